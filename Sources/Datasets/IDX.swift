/// What an IDX file holds. Only unsigned-byte data (type code 0x08) is used by MNIST-like sets.
public enum IDXKind: Sendable {
    case labels   // magic 0x00000801: one dimension (N)
    case images   // magic 0x00000803: three dimensions (N, H, W)

    var magic: UInt32 { self == .labels ? 0x0000_0801 : 0x0000_0803 }
    var dimensionCount: Int { self == .labels ? 1 : 3 }
}

/// IDX files larger than this are refused before anything is allocated.
public let idxByteLimit = 1 << 31

/// Reads one unsigned-byte IDX file front to back (raw or gzip), hashing its whole content.
///
/// `onHeader` sees the validated dimensions before any data is read, so callers can check
/// them against another file and size their buffers. `onRecords` then receives the data in
/// chunks of whole records, in file order, with the index of the first record in the chunk.
/// Returns the dimensions, the SHA-256 of the uncompressed content and, for a gzip file, the
/// SHA-256 of the file as stored.
@discardableResult
func readIDX(path: String, kind: IDXKind,
             onHeader: ([Int]) throws -> Void,
             onRecords: (_ firstRecord: Int, _ records: UnsafeRawBufferPointer) throws -> Void)
    throws -> (dimensions: [Int], sha256: String, storedSHA256: String?)
{
    let stream = try ByteStream(path: path)
    var hasher = SHA256()
    let dimensions = try readIDXHeader(stream, kind: kind, path: path, hasher: &hasher)
    let dataBytes = try idxDataBytes(dimensions, path: path)
    try onHeader(dimensions)
    try readIDXRecords(stream, dimensions: dimensions, dataBytes: dataBytes, path: path, hasher: &hasher, onRecords: onRecords)
    var stored = stream.storedHasher
    return (dimensions, hexString(hasher.finalize()), stream.isGzip ? hexString(stored.finalize()) : nil)
}

/// The magic number and the dimensions, hashed; an empty file, a short header, the wrong magic
/// or a zero dimension is an error.
private func readIDXHeader(_ stream: ByteStream, kind: IDXKind, path: String, hasher: inout SHA256) throws -> [Int] {
    let headerBytes = 4 + 4 * kind.dimensionCount
    var header = [UInt8](repeating: 0, count: headerBytes)
    let got = try header.withUnsafeMutableBytes { try stream.read(into: $0) }
    header.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
    func bigEndianWord(_ offset: Int) -> UInt32 {
        (UInt32(header[offset]) << 24) | (UInt32(header[offset + 1]) << 16)
            | (UInt32(header[offset + 2]) << 8) | UInt32(header[offset + 3])
    }
    if got < 4 {
        if got == 0 { throw DatasetError.emptyFile(path: path) }
        throw DatasetError.truncatedHeader(path: path, expectedBytes: headerBytes, foundBytes: got)
    }
    let magic = bigEndianWord(0)
    guard magic == kind.magic else {
        throw DatasetError.wrongMagic(path: path, expected: kind.magic, found: magic)
    }
    guard got == headerBytes else {
        throw DatasetError.truncatedHeader(path: path, expectedBytes: headerBytes, foundBytes: got)
    }
    let dimensions = (0..<kind.dimensionCount).map { Int(bigEndianWord(4 + 4 * $0)) }
    if dimensions.contains(0) { throw DatasetError.zeroDimension(path: path, dimensions: dimensions) }
    return dimensions
}

/// The product of the dimensions: the data's size in bytes, refused above `idxByteLimit`.
private func idxDataBytes(_ dimensions: [Int], path: String) throws -> Int {
    // Multiply with overflow checks: four 32-bit dimensions can overflow even 64 bits.
    var dataBytes = 1
    for d in dimensions {
        let (product, overflow) = dataBytes.multipliedReportingOverflow(by: d)
        if overflow || product > idxByteLimit {
            throw DatasetError.tooLarge(path: path, dimensions: dimensions,
                                        bytes: overflow ? Int.max : product, limit: idxByteLimit)
        }
        dataBytes = product
    }
    return dataBytes
}

/// The records after the header, hashed and handed to `onRecords` in chunks of whole records of
/// about 1 MiB; a file shorter or longer than its header promises is an error. The chunk grows only
/// as the file delivers bytes, so a header promising one 2 GiB record costs memory only for the bytes
/// the file really holds.
private func readIDXRecords(_ stream: ByteStream, dimensions: [Int], dataBytes: Int, path: String, hasher: inout SHA256,
                            onRecords: (_ firstRecord: Int, _ records: UnsafeRawBufferPointer) throws -> Void) throws {
    let recordBytes = dataBytes / dimensions[0]
    let recordsPerChunk = max(1, (1 << 20) / recordBytes)
    let chunk = GrowingChunk(capacity: min(recordsPerChunk * recordBytes, 1 << 20))
    var record = 0
    while record < dimensions[0] {
        let want = min(recordsPerChunk, dimensions[0] - record) * recordBytes
        let n = try chunk.fill(want, from: stream)
        hasher.update(chunk.bytes(n))
        if n < want {
            throw DatasetError.truncatedData(path: path, expectedBytes: dataBytes,
                                             foundBytes: record * recordBytes + n)
        }
        try onRecords(record, chunk.bytes(want))
        record += want / recordBytes
    }
    // Anything after the promised data means the header and the file disagree.
    var extra = 0
    while true {
        let n = try chunk.fill(chunk.capacity, from: stream)
        if n == 0 { break }
        extra += n
    }
    if extra > 0 { throw DatasetError.trailingBytes(path: path, extraBytes: extra) }
}

/// A read buffer that doubles (from 1 MiB) only while the stream keeps delivering.
private final class GrowingChunk {
    private(set) var capacity: Int
    private var base: UnsafeMutableRawPointer

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        base = .allocate(byteCount: self.capacity, alignment: 64)
    }

    deinit { base.deallocate() }

    /// Reads up to `count` bytes from the start of the buffer; fewer only at the end of the stream.
    func fill(_ count: Int, from stream: ByteStream) throws -> Int {
        var filled = 0
        while filled < count {
            if filled == capacity { grow(to: min(count, max(2 * capacity, 1 << 20))) }
            let n = try stream.read(into: UnsafeMutableRawBufferPointer(start: base + filled, count: min(count, capacity) - filled))
            if n == 0 { break }
            filled += n
        }
        return filled
    }

    func bytes(_ count: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    private func grow(to newCapacity: Int) {
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 64)
        bigger.copyMemory(from: base, byteCount: capacity)
        base.deallocate()
        base = bigger
        capacity = newCapacity
    }
}
