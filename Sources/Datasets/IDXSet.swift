#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A classification set in MNIST's layout: a directory holding the four IDX files under MNIST's
/// names (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`, each raw or with `.gz`) and, optionally, `classes.txt` with one class
/// name a line. The image size comes from the files, the class count from `classes.txt` (whose
/// lines must cover every label) or else from the largest label + 1. A known set (`KnownSet`) is
/// named; one whose files only partly match is refused as a damaged download. A directory without
/// MNIST's names but with one EMNIST split's (`emnist-balanced-train-images-idx3-ubyte.gz`, ...)
/// is that split: read transposed, its labels counted from 0.
public struct IDXSet: Sendable {
    /// What to read of one split.
    public enum Part: Sendable {
        case skip
        case all
        case shard(ShardSpec)
    }

    public static let classNamesFile = "classes.txt"

    public let directory: String
    public let train: Dataset?
    /// The records of the training file held out by a `ValidationSplit` (this rank's share), if asked for.
    public var validation: Dataset?
    public let test: Dataset?
    /// The known set, or nil for an unknown one.
    public let known: KnownSet?
    /// One name per class; the class count is their number.
    public let classNames: [String]
    /// (height, width) of every image, after any transposition.
    public let height: Int
    public let width: Int
    /// The files read, with their checksums.
    public let files: [KnownSet.File]

    public var classCount: Int { classNames.count }
    /// The known set's name or "unknown set".
    public var displayName: String { known?.name ?? "unknown set" }

    /// For an unknown set: the one line saying it was accepted, with the SHA-256 of each file.
    public var notice: String? {
        guard known == nil else { return nil }
        let hashes = files.map { "\(lastComponent($0.path)) \($0.contentSHA256)" }.joined(separator: ", ")
        return "unknown set in \(directory) (not \(KnownSet.all.map(\.name).joined(separator: ", "))), accepted: "
            + "\(height)x\(width) images, \(classCount) classes; SHA-256 of the content: \(hashes)"
    }

    /// What the data is, in one line: compared across ranks and on resume, recorded in checkpoints.
    public var identity: String {
        "\(displayName) \(height)x\(width) \(classCount) classes; "
            + files.map { "\($0.name) \($0.contentSHA256)" }.joined(separator: "; ")
    }

    /// Reads the parts asked for, recognises the set and settles its shape and classes.
    /// - Parameters:
    ///   - validation: hold records of the training file out of `train` by this split and read
    ///     `part` of them (a shard under several ranks) as `validation`; `train`'s part then deals
    ///     out only the records trained on, and its `totalCount` is theirs.
    ///   - verify: refuse a damaged known set (otherwise it reads as unknown).
    public static func load(from directory: String, train trainPart: Part, test testPart: Part,
                            validation: (split: ValidationSplit, part: Part)? = nil, verify: Bool = true) throws -> IDXSet {
        var set = try load(from: directory, train: trainPart, test: testPart, heldOut: validation, verify: verify)
        if let validation, let whole = set.train {
            let split = try validation.split.split(total: whole.totalCount, path: whole.labelsPath)
            let held = Set(split.validation)
            let train = whole.keeping(totalCount: split.train.count) { !held.contains(Int32($0)) }
            set = IDXSet(directory: set.directory, train: train, test: set.test, known: set.known, classNames: set.classNames,
                         height: set.height, width: set.width, files: set.files)
            set.validation = whole.keeping(totalCount: split.validation.count) { held.contains(Int32($0)) }
        }
        return set
    }

    /// The ids of a training file of `total` records that one rank reads: its part of those
    /// trained on and its part of those held out.
    static func records(total: Int, train: Part, heldOut: (split: ValidationSplit, part: Part), path: String) throws -> [Int32] {
        let split = try heldOut.split.split(total: total, path: path)
        func share(_ ids: [Int32], _ part: Part) throws -> [Int32] {
            switch part {
            case .skip: return []
            case .all: return ids
            case .shard(let spec): return try spec.share(of: ids)
            }
        }
        return (try share(split.train, train) + share(split.validation, heldOut.part)).sorted()
    }

    private static func load(from directory: String, train trainPart: Part, test testPart: Part,
                             heldOut: (split: ValidationSplit, part: Part)?, verify: Bool) throws -> IDXSet {
        var info = stat()
        if stat(directory, &info) != 0 || (info.st_mode & S_IFMT) != S_IFDIR {
            throw DatasetError.directoryNotFound(path: directory)
        }
        var files = [KnownSet.File]()
        let emnist = emnistSplit(in: directory)
        let layout = emnist ?? KnownSet.mnist   // whose file names to read
        func read(_ split: MNIST.Split, _ part: Part) throws -> Dataset? {
            let shard: ShardSpec?
            switch part {
            case .skip: return nil
            case .all: shard = nil
            case .shard(let spec): shard = spec
            }
            let labelsPath = MNIST.path(of: layout.fileName(split, images: false), in: directory)
            let select = split == .train ? heldOut.map { heldOut in
                { (total: Int) in try records(total: total, train: part, heldOut: heldOut, path: labelsPath) }
            } : nil
            let set = try Dataset.load(imagesPath: MNIST.path(of: layout.fileName(split, images: true), in: directory),
                                       labelsPath: labelsPath, classCount: nil, imageSize: nil, shard: shard,
                                       transposed: layout.transposed, select: select)
            files.append(KnownSet.File(name: layout.fileName(split, images: true), path: set.imagesPath,
                                       contentSHA256: set.imagesSHA256, storedSHA256: set.imagesStoredSHA256))
            files.append(KnownSet.File(name: layout.fileName(split, images: false), path: set.labelsPath,
                                       contentSHA256: set.labelsSHA256, storedSHA256: set.labelsStoredSHA256))
            return set
        }
        var train = try read(.train, trainPart)
        var test = try read(.test, testPart)

        var known: KnownSet? = emnist
        if emnist == nil {
            switch KnownSet.recognise(files) {
            case .known(let set): known = set
            case .damaged(_, let problems): if verify, let first = problems.first { throw first }
            case .unknown: break
            }
        }
        let loaded = [train, test].compactMap { $0 }
        guard let first = loaded.first else {
            return IDXSet(directory: directory, train: nil, test: nil, known: known,
                          classNames: known?.classNames ?? [], height: 0, width: 0, files: files)
        }
        if let test, let train, (test.height, test.width) != (train.height, train.width) {
            throw DatasetError.unexpectedImageSize(path: test.imagesPath, height: test.height, width: test.width,
                                                   expectedHeight: train.height, expectedWidth: train.width)
        }
        let offset = known?.labelOffset ?? 0
        for set in loaded where offset > 0 {
            if let index = set.labels.firstIndex(where: { Int($0) < offset }) {
                throw DatasetError.unreadable(path: set.labelsPath, reason: "label \(set.labels[index]) at position \(index); "
                                              + "\(known?.name ?? "this set") labels its classes from \(offset)")
            }
        }
        let largest = (loaded.map { $0.classCount }.max() ?? 1) - offset
        let classNames: [String]
        let namesPath = (directory.hasSuffix("/") ? directory : directory + "/") + classNamesFile
        if let names = try readClassNames(path: namesPath) {
            for set in loaded where set.classCount - offset > names.count {
                throw DatasetError.labelWithoutClassName(path: namesPath, lines: names.count,
                                                         labelsPath: set.labelsPath, label: set.classCount - 1)
            }
            classNames = names
        } else if let known, largest <= known.classNames.count {
            classNames = known.classNames
        } else {
            classNames = (0..<largest).map(String.init)
        }
        train = train?.with(classCount: classNames.count, labelOffset: offset)
        test = test?.with(classCount: classNames.count, labelOffset: offset)
        return IDXSet(directory: directory, train: train, test: test, known: known, classNames: classNames,
                      height: first.height, width: first.width, files: files)
    }

    /// The EMNIST split whose training images are in `directory` when MNIST's names are not there.
    static func emnistSplit(in directory: String) -> KnownSet? {
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        func exists(_ name: String) -> Bool { access(base + name, F_OK) == 0 || access(base + name + ".gz", F_OK) == 0 }
        if exists(MNIST.Split.train.imagesName) { return nil }
        return KnownSet.emnist.first { exists($0.fileName(.train, images: true)) }
    }

    /// The lines of classes.txt, or nil when there is none. Each line names one class, in label
    /// order; surrounding spaces and a final newline are ignored; an empty line is an error.
    public static func readClassNames(path: String) throws -> [String]? {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw DatasetError.badClassNames(path: path, reason: "cannot read: " + String(cString: strerror(errno)))
        }
        defer { close(fd) }
        let limit = 1 << 20
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DatasetError.badClassNames(path: path, reason: "cannot read: " + String(cString: strerror(errno)))
            }
            if n == 0 { break }
            bytes += buffer[0..<n]
            if bytes.count > limit {
                throw DatasetError.badClassNames(path: path, reason: "larger than \(limit) bytes; expected one class name a line")
            }
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw DatasetError.badClassNames(path: path, reason: "not UTF-8 text")
        }
        let blank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }
        var lines = bytes.split(separator: 0x0a, omittingEmptySubsequences: false).map { line in
            String(decoding: line.drop(while: blank).reversed().drop(while: blank).reversed(), as: UTF8.self)
        }
        if lines.last == "" { lines.removeLast() }
        if lines.isEmpty { throw DatasetError.badClassNames(path: path, reason: "holds no class names") }
        if lines.count > 256 {
            throw DatasetError.badClassNames(path: path, reason: "names \(lines.count) classes; labels are bytes, so at most 256")
        }
        if let empty = lines.firstIndex(of: "") {
            throw DatasetError.badClassNames(path: path, reason: "line \(empty + 1) is empty; give one class name a line")
        }
        return lines
    }
}

private func lastComponent(_ path: String) -> String {
    path.split(separator: "/").last.map(String.init) ?? path
}
