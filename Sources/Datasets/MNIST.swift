#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The four MNIST files and the SHA-256 of each one's uncompressed content.
public enum MNIST {
    public enum Split: String, Sendable, CaseIterable {
        case train, test
        public var imagesName: String { self == .train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte" }
        public var labelsName: String { self == .train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte" }
    }

    /// SHA-256 of the uncompressed IDX content, as published with the data set (also in
    /// shared/data/mnist/SHA256SUMS and scripts/mnist.sha256).
    public static let contentSHA256: [String: String] = [
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ]

    /// The file for `name` in `directory`: `name.gz` if present, else `name`; if neither exists,
    /// the `.gz` path, so the error names what was looked for.
    public static func path(of name: String, in directory: String) -> String {
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        if access(base + name + ".gz", F_OK) == 0 { return base + name + ".gz" }
        if access(base + name, F_OK) == 0 { return base + name }
        return base + name + ".gz"
    }

    /// Loads one split from `directory`, optionally only one rank's shard. With `verify`, a
    /// checksum that differs from the published one is an error.
    public static func load(_ split: Split, from directory: String, shard: ShardSpec? = nil,
                            verify: Bool = true) throws -> Dataset {
        var info = stat()
        if stat(directory, &info) != 0 || (info.st_mode & S_IFMT) != S_IFDIR {
            throw DatasetError.directoryNotFound(path: directory)
        }
        let dataset = try Dataset.load(imagesPath: path(of: split.imagesName, in: directory),
                                       labelsPath: path(of: split.labelsName, in: directory),
                                       classCount: 10, imageSize: (28, 28), shard: shard)
        if verify {
            for problem in checksumProblems(dataset, split: split) { throw problem }
        }
        return dataset
    }

    /// The checksum mismatches of a loaded split (empty when both files are the published ones).
    public static func checksumProblems(_ dataset: Dataset, split: Split) -> [DatasetError] {
        var problems = [DatasetError]()
        let expectedImages = contentSHA256[split.imagesName]!
        let expectedLabels = contentSHA256[split.labelsName]!
        if dataset.imagesSHA256 != expectedImages {
            problems.append(.checksumMismatch(path: dataset.imagesPath, expected: expectedImages, found: dataset.imagesSHA256))
        }
        if dataset.labelsSHA256 != expectedLabels {
            problems.append(.checksumMismatch(path: dataset.labelsPath, expected: expectedLabels, found: dataset.labelsSHA256))
        }
        return problems
    }
}
