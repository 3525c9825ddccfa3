import ArgumentParser
import Datasets
import Training

struct InspectData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect-data",
        abstract: "Read, validate and checksum the MNIST files; print counts, class balance and pixel statistics.",
        discussion: "Exits non-zero when a file is missing, malformed, or not the published MNIST content."
    )

    @OptionGroup var data: DataOptions

    func run() throws {
        try reportingErrors {
            let start = monotonicSeconds()
            var loaded: [(MNIST.Split, Dataset)] = []
            for split in MNIST.Split.allCases {
                loaded.append((split, try MNIST.load(split, from: data.dataDir, verify: false)))
            }
            let seconds = monotonicSeconds() - start

            print("MNIST in \(data.dataDir)  (read and checksummed in \(fixed(seconds, 3)) s)")
            print("")
            var header = pad("split", 6, right: false) + pad("images", 8) + pad("size", 7)
            for digit in 0..<10 { header += pad(String(digit), 6) }
            header += pad("mean", 8) + pad("std", 8)
            print(header)
            for (split, set) in loaded {
                var line = pad(split.rawValue, 6, right: false) + pad(String(set.count), 8)
                    + pad("\(set.height)x\(set.width)", 7)
                for count in set.classCounts() { line += pad(String(count), 6) }
                let stats = set.pixelStatistics()
                line += pad(fixed(stats.mean, 2), 8) + pad(fixed(stats.standardDeviation, 2), 8)
                print(line)
            }
            print("(pixel mean and standard deviation on the 0-255 scale)")
            print("")
            var failures = 0
            for (split, set) in loaded {
                let problems = MNIST.checksumProblems(set, split: split)
                for (path, sha) in [(set.imagesPath, set.imagesSHA256), (set.labelsPath, set.labelsSHA256)] {
                    let bad = problems.contains { $0.path == path }
                    if bad { failures += 1 }
                    print("sha256 \(sha)  \(path)  \(bad ? "MISMATCH: not the published MNIST content" : "verified")")
                }
            }
            if failures > 0 {
                printError("digits: error: \(failures) file(s) differ from the published MNIST; run scripts/fetch-mnist.sh again")
                throw ExitCode.failure
            }
        }
    }
}
