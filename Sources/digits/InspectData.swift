import ArgumentParser
import Datasets
import Training

struct InspectData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-data",
        abstract: "Read, validate and checksum a data set's IDX files; print its name, shape, counts, class balance and pixel statistics.",
        discussion: "Exits non-zero when a file is missing or malformed, or when a known set (MNIST, Fashion-MNIST, KMNIST) is damaged: some of its files match the published ones and others do not. EMNIST's splits are known by their file names (emnist-<split>-train-images-idx3-ubyte, ...)."
    )

    @OptionGroup var data: DataOptions

    func run() throws {
        try reportingErrors {
            let start = monotonicSeconds()
            let set = try IDXSet.load(from: data.dataDir, train: .all, test: .all, verify: false)
            let seconds = monotonicSeconds() - start
            let loaded: [(MNIST.Split, Dataset)] = [(.train, set.train), (.test, set.test)].compactMap { split, part in
                part.map { (split, $0) }
            }

            print("\(set.displayName) in \(data.dataDir)  (read and checksummed in \(fixed(seconds, 3)) s)")
            print("\(set.height)x\(set.width) images, \(set.classCount) classes: " + set.classNames.joined(separator: ", "))
            print("")
            var header = pad("split", 6, right: false) + pad("images", 8) + pad("size", 7)
            for label in 0..<set.classCount { header += pad(String(label), 6) }
            header += pad("mean", 8) + pad("std", 8)
            print(header)
            for (split, part) in loaded {
                var line = pad(split.rawValue, 6, right: false) + pad(String(part.count), 8)
                    + pad("\(part.height)x\(part.width)", 7)
                for count in part.classCounts() { line += pad(String(count), 6) }
                let stats = part.pixelStatistics()
                line += pad(fixed(stats.mean, 2), 8) + pad(fixed(stats.standardDeviation, 2), 8)
                print(line)
            }
            print("(pixel mean and standard deviation on the 0-255 scale)")
            print("")
            var damaged: (set: String, problems: [DatasetError])?
            if case .damaged(let known, let problems) = KnownSet.recognise(set.files) { damaged = (known.name, problems) }
            for file in set.files {
                let bad = damaged?.problems.contains { $0.path == file.path } ?? false
                let verdict = if let damaged { bad ? "MISMATCH: not the published \(damaged.set)" : "matches \(damaged.set)" }
                    else if let known = set.known { known.checksum == .fileNames ? "\(known.name) by its name (no published checksum)" : "verified" }
                    else { "unknown set" }
                print("sha256 \(file.contentSHA256)  \(file.path)  \(verdict)")
            }
            if damaged == nil, let notice = set.notice { print(notice) }
            if let damaged {
                for problem in damaged.problems { printError("digits: error: \(problem)") }
                printError("digits: error: \(damaged.problems.count) file(s) differ from the published \(damaged.set); fetch it again")
                throw ExitCode.failure
            }
        }
    }
}
