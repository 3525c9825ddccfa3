/// Data sets published in MNIST's IDX layout that the project recognises by checksum and names.
///
/// A set is known by the SHA-256 of its four files: of the uncompressed content where such values
/// are published (MNIST), of the .gz files as published otherwise (Fashion-MNIST and KMNIST publish
/// only checksums of their .gz files, so a recompressed or uncompressed copy of those reads as an
/// unknown set). EMNIST publishes no per-file checksums (only one for the zip holding every split),
/// so its splits are known by their file names (`emnist-<split>-train-images-idx3-ubyte`, ...).
/// docs/data.md lists the sources.
public struct KnownSet: Sendable, Equatable {
    public enum Checksum: Sendable, Equatable {
        /// SHA-256 of the uncompressed IDX content.
        case content
        /// SHA-256 of the .gz file as published.
        case gzipFile
        /// None published per file: known by the file names.
        case fileNames
    }

    public let name: String
    public let checksum: Checksum
    /// File name (MNIST's names, without .gz) → SHA-256, lowercase hex.
    public let sha256: [String: String]
    public let classNames: [String]
    /// Images stored column by column (EMNIST).
    public let transposed: Bool
    /// The file's label of class 0 (EMNIST letters count from 1).
    public var labelOffset = 0
    /// The file name prefix of EMNIST's splits, "" for MNIST's names.
    public var filePrefix = ""

    public static let mnist = KnownSet(
        name: "MNIST", checksum: .content, sha256: MNIST.contentSHA256,
        classNames: (0..<10).map(String.init), transposed: false)

    public static let fashionMNIST = KnownSet(
        name: "Fashion-MNIST", checksum: .gzipFile,
        sha256: [
            "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ],
        classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        transposed: false)

    public static let kmnist = KnownSet(
        name: "KMNIST", checksum: .gzipFile,
        sha256: [
            "train-images-idx3-ubyte": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "train-labels-idx1-ubyte": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "t10k-images-idx3-ubyte": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "t10k-labels-idx1-ubyte": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        ],
        classNames: ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        transposed: false)

    /// EMNIST's splits (Cohen et al. 2017), in MNIST's layout but stored transposed, each file
    /// named emnist-<split>-<train|test>-<images-idx3|labels-idx1>-ubyte[.gz].
    public static let emnist: [KnownSet] = {
        let digits = (0..<10).map(String.init)
        let upper = (0..<26).map { String(UnicodeScalar(UInt8(65 + $0))) }
        let lower = (0..<26).map { String(UnicodeScalar(UInt8(97 + $0))) }
        let merged = digits + upper + ["a", "b", "d", "e", "f", "g", "h", "n", "q", "r", "t"]
        func split(_ name: String, _ classNames: [String], labelOffset: Int = 0) -> KnownSet {
            var set = KnownSet(name: "EMNIST " + name, checksum: .fileNames, sha256: [:], classNames: classNames, transposed: true)
            set.labelOffset = labelOffset
            set.filePrefix = "emnist-\(name)-"
            return set
        }
        return [split("byclass", digits + upper + lower), split("bymerge", merged), split("balanced", merged),
                split("letters", upper, labelOffset: 1), split("digits", digits), split("mnist", digits)]
    }()

    public static let all: [KnownSet] = [.mnist, .fashionMNIST, .kmnist]

    /// The file of `split` under this set's names (MNIST's, or EMNIST's with train/test).
    public func fileName(_ split: MNIST.Split, images: Bool) -> String {
        if filePrefix.isEmpty { return images ? split.imagesName : split.labelsName }
        return filePrefix + (split == .train ? "train" : "test") + (images ? "-images-idx3-ubyte" : "-labels-idx1-ubyte")
    }

    /// One loaded file as recognition sees it.
    public struct File: Sendable {
        public let name: String          // MNIST's name, without .gz
        public let path: String
        public let contentSHA256: String
        public let storedSHA256: String? // gzip files only

        public init(name: String, path: String, contentSHA256: String, storedSHA256: String?) {
            self.name = name; self.path = path; self.contentSHA256 = contentSHA256; self.storedSHA256 = storedSHA256
        }

        func digest(_ kind: Checksum) -> String? { kind == .content ? contentSHA256 : storedSHA256 }
    }

    public enum Recognition: Sendable {
        case known(KnownSet)
        /// Some files are this set's and others are not: each mismatch names its file.
        case damaged(KnownSet, [DatasetError])
        case unknown
    }

    /// All files match one known set: that set. Some match a set and others do not: damaged. None
    /// matches any set: unknown.
    public static func recognise(_ files: [File]) -> Recognition {
        for set in all {
            var problems = [DatasetError]()
            var matches = 0
            for file in files {
                guard set.checksum != .fileNames, let expected = set.sha256[file.name] else { continue }
                let found = file.digest(set.checksum)
                if found == expected {
                    matches += 1
                } else {
                    problems.append(.damagedKnownSet(path: file.path, set: set.name, checksum: set.checksum,
                                                     expected: expected, found: found ?? "(not a gzip file)"))
                }
            }
            if matches > 0 { return problems.isEmpty ? .known(set) : .damaged(set, problems) }
        }
        return .unknown
    }
}
