/// Everything that can be wrong with a data file a user supplies. Each message names the file.
public enum DatasetError: Error, Equatable, CustomStringConvertible, Sendable {
    case fileNotFound(path: String)
    case directoryNotFound(path: String)
    case unreadable(path: String, reason: String)
    case emptyFile(path: String)
    case corruptGzip(path: String, reason: String)
    case truncatedHeader(path: String, expectedBytes: Int, foundBytes: Int)
    case wrongMagic(path: String, expected: UInt32, found: UInt32)
    case zeroDimension(path: String, dimensions: [Int])
    case tooLarge(path: String, dimensions: [Int], bytes: Int, limit: Int)
    case truncatedData(path: String, expectedBytes: Int, foundBytes: Int)
    case trailingBytes(path: String, extraBytes: Int)
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    case countMismatch(imagesPath: String, images: Int, labelsPath: String, labels: Int)
    case unexpectedImageSize(path: String, height: Int, width: Int, expectedHeight: Int, expectedWidth: Int)
    case checksumMismatch(path: String, expected: String, found: String)
    /// A file of a known set differs from the published one while the others match.
    case damagedKnownSet(path: String, set: String, checksum: KnownSet.Checksum, expected: String, found: String)
    /// classes.txt is unreadable or malformed.
    case badClassNames(path: String, reason: String)
    /// A label has no line in classes.txt.
    case labelWithoutClassName(path: String, lines: Int, labelsPath: String, label: Int)
    case invalidShard(rank: Int, worldSize: Int, sampleCount: Int)

    public var path: String? {
        switch self {
        case .fileNotFound(let p), .directoryNotFound(let p), .unreadable(let p, _), .emptyFile(let p), .corruptGzip(let p, _),
             .truncatedHeader(let p, _, _), .wrongMagic(let p, _, _), .zeroDimension(let p, _),
             .tooLarge(let p, _, _, _), .truncatedData(let p, _, _), .trailingBytes(let p, _),
             .labelOutOfRange(let p, _, _, _), .unexpectedImageSize(let p, _, _, _, _),
             .checksumMismatch(let p, _, _), .damagedKnownSet(let p, _, _, _, _), .badClassNames(let p, _),
             .labelWithoutClassName(let p, _, _, _):
            return p
        case .countMismatch(let p, _, _, _): return p
        case .invalidShard: return nil
        }
    }

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file"
        case .directoryNotFound(let path):
            return "\(path): no such directory; scripts/fetch-mnist.sh puts MNIST in data/mnist"
        case .unreadable(let path, let reason):
            return "\(path): cannot read: \(reason)"
        case .emptyFile(let path):
            return "\(path): the file is empty; expected an IDX file"
        case .corruptGzip(let path, let reason):
            return "\(path): corrupt gzip stream: \(reason)"
        case .truncatedHeader(let path, let expected, let found):
            return "\(path): truncated IDX header: expected \(expected) bytes, found \(found)"
        case .wrongMagic(let path, let expected, let found):
            return "\(path): not the expected IDX file: magic number is \(hex32(found)), expected \(hex32(expected))"
        case .zeroDimension(let path, let dims):
            return "\(path): IDX dimensions \(dims.map(String.init).joined(separator: "x")) contain a zero"
        case .tooLarge(let path, let dims, let bytes, let limit):
            return "\(path): IDX dimensions \(dims.map(String.init).joined(separator: "x")) promise \(bytes) bytes, "
                + "more than the \(limit)-byte limit; refusing to allocate"
        case .truncatedData(let path, let expected, let found):
            return "\(path): truncated IDX data: the header promises \(expected) bytes of data, the file holds \(found)"
        case .trailingBytes(let path, let extra):
            return "\(path): \(extra) unexpected bytes after the IDX data the header describes"
        case .labelOutOfRange(let path, let index, let label, let classes):
            return "\(path): label \(label) at record \(index) is outside 0..<\(classes)"
        case .countMismatch(let imagesPath, let images, let labelsPath, let labels):
            return "\(imagesPath) holds \(images) images but \(labelsPath) holds \(labels) labels"
        case .unexpectedImageSize(let path, let h, let w, let eh, let ew):
            return "\(path): images are \(h)x\(w), expected \(eh)x\(ew)"
        case .checksumMismatch(let path, let expected, let found):
            return "\(path): SHA-256 of the uncompressed content is \(found), expected \(expected)"
        case .damagedKnownSet(let path, let set, let checksum, let expected, let found):
            let what = checksum == .gzipFile ? "of the .gz file" : "of the uncompressed content"
            return "\(path): SHA-256 \(what) is \(found), expected \(expected): the other files are \(set)'s, "
                + "so this is a damaged download of \(set); fetch it again"
        case .badClassNames(let path, let reason):
            return "\(path): \(reason)"
        case .labelWithoutClassName(let path, let lines, let labelsPath, let label):
            return "\(path) names \(lines) classes, but \(labelsPath) holds label \(label); "
                + "give one line per class, for labels 0 to the largest"
        case .invalidShard(let rank, let worldSize, let count):
            return "cannot shard \(count) samples for rank \(rank) of \(worldSize)"
        }
    }
}

private func hex32(_ value: UInt32) -> String {
    let s = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}
