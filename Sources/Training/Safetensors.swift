import Datasets
import Foundation

/// A problem with a checkpoint file, naming the file.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public let path: String
    public let problem: String
    public init(_ path: String, _ problem: String) { self.path = path; self.problem = problem }
    public var description: String { "\(path): \(problem)" }
}

/// One named F32 tensor of a safetensors file.
public struct StoredTensor: Sendable {
    public let name: String
    public let shape: [Int]
    public var values: [Float]
}

/// The safetensors container (the format of Hugging Face's `safetensors`): an 8-byte
/// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
/// a `__metadata__` map of strings, then the raw little-endian tensor bytes.
///
/// Integrity: metadata `tensor_sha256` is the SHA-256 of the whole data section, and
/// `header_sha256` the SHA-256 of the header bytes with that field's own 64 hex digits set to
/// '0' (so the hash can live inside what it covers). Any flipped bit is caught.
public enum Safetensors {
    public static let headerLimit = 100 << 20
    static let placeholder = String(repeating: "0", count: 64)

    public static func encode(_ tensors: [StoredTensor], metadata: [String: String]) throws -> [UInt8] {
        var data = [UInt8]()
        data.reserveCapacity(tensors.reduce(0) { $0 + $1.values.count * 4 })
        var header: [String: Any] = [:]
        for tensor in tensors {
            let start = data.count
            tensor.values.withUnsafeBytes { raw in
                // Little-endian on every host digits runs on (x86-64, aarch64); swap elsewhere.
                if UInt32(1).littleEndian == 1 { data.append(contentsOf: raw) }
                else { for v in tensor.values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } } }
            }
            header[tensor.name] = ["dtype": "F32", "shape": tensor.shape, "data_offsets": [start, data.count]]
        }
        var meta = metadata
        meta["tensor_sha256"] = SHA256.hex(data)
        meta["header_sha256"] = placeholder
        header["__metadata__"] = meta
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return try assemble(header: [UInt8](json), data: data)
    }

    /// Seals a JSON header whose `header_sha256` holds the placeholder, and joins it to the data.
    static func assemble(header json: [UInt8], data: [UInt8]) throws -> [UInt8] {
        var headerBytes = json
        // Pad with spaces to a multiple of 8 so the data section is aligned (as the reference writer does).
        while (headerBytes.count % 8) != 0 { headerBytes.append(0x20) }
        let digest = SHA256.hex(headerBytes)
        guard let at = find(Array("\"header_sha256\":\"\(placeholder)\"".utf8), in: headerBytes) else {
            throw CheckpointError("<memory>", "could not place the header checksum")
        }
        let digits = Array(digest.utf8)
        let first = at + "\"header_sha256\":\"".utf8.count
        for i in 0..<64 { headerBytes[first + i] = digits[i] }
        var file = [UInt8]()
        file.reserveCapacity(8 + headerBytes.count + data.count)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { file.append(contentsOf: $0) }
        file += headerBytes
        file += data
        return file
    }

    /// Reads a file that should be a safetensors file, checking the header length, then the
    /// header, against the file's size before reading the data section: a large file that is not
    /// a checkpoint is refused after reading at most its header, not read whole into memory.
    public static func readFile(_ path: String) throws -> [UInt8] { try read(path, withData: true).bytes }

    /// The header's entries, reading only the length and the header (not verified: `decode` verifies).
    static func readHeader(_ path: String) throws -> [String: Any] { try read(path, withData: false).header }

    private static func read(_ path: String, withData: Bool) throws -> (bytes: [UInt8], header: [String: Any]) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "no such file" : "cannot open for reading: \(String(cString: strerror(errno)))"
            throw CheckpointError(path, reason)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CheckpointError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw CheckpointError(path, "is not a regular file") }
        let size = Int(info.st_size)
        func readExactly(_ count: Int, at offset: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CheckpointError(path, n == 0 ? "truncated while reading" : "read failed: \(String(cString: strerror(errno)))") }
                done += n
            }
            return bytes
        }
        guard size >= 8 else { throw CheckpointError(path, "truncated: \(size) bytes, not even the 8-byte header length") }
        let lengthBytes = try readExactly(8, at: 0)
        let headerLength = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard headerLength <= UInt64(headerLimit) else {
            throw CheckpointError(path, "header length \(headerLength) bytes is absurd (limit \(headerLimit)); not a digits checkpoint or corrupt")
        }
        guard 8 + Int(headerLength) <= size else {
            throw CheckpointError(path, "truncated: the header claims \(headerLength) bytes but the file has \(size - 8) after the length")
        }
        let header = try readExactly(Int(headerLength), at: 8)
        guard let object = try? JSONSerialization.jsonObject(with: Data(header)), let entries = object as? [String: Any] else {
            throw CheckpointError(path, "the header is not valid JSON (corrupt file, or not a checkpoint)")
        }
        guard withData else { return ([], entries) }
        // The data section is exactly as long as the furthest tensor end; anything else is refused before reading it.
        var end = 0
        for (name, value) in entries where name != "__metadata__" {
            guard let offsets = (value as? [String: Any])?["data_offsets"] as? [Int], offsets.count == 2 else {
                throw CheckpointError(path, "tensor \(name) has a malformed entry")
            }
            end = max(end, offsets[1])
        }
        let dataSize = size - 8 - Int(headerLength)
        guard dataSize <= end else { throw CheckpointError(path, "\(dataSize - end) unexpected bytes after the last tensor") }
        guard dataSize == end else { throw CheckpointError(path, "truncated: the tensors end at byte \(end) of the data section, the file holds \(dataSize)") }
        return (lengthBytes + header + (try readExactly(dataSize, at: 8 + Int(headerLength))), entries)
    }

    /// Parses and verifies a whole file; every failure names `path` and what is wrong.
    public static func decode(_ file: [UInt8], path: String) throws -> (tensors: [StoredTensor], metadata: [String: String]) {
        let (header, metadata, dataStart) = try verifiedHeader(file, path: path)
        let data = file[dataStart...]
        var tensors = [StoredTensor]()
        for (name, value) in header where name != "__metadata__" {
            tensors.append(try tensor(name, entry: value, file: file, dataStart: dataStart, path: path))
        }
        try checkLayout(header, data: data, hasTensors: !tensors.isEmpty, metadata: metadata, path: path)
        return (tensors.sorted { $0.name < $1.name }, metadata)
    }

    /// The header's JSON and string metadata, its checksum verified, and where the data section starts.
    static func verifiedHeader(_ file: [UInt8], path: String) throws -> (header: [String: Any], metadata: [String: String], dataStart: Int) {
        guard file.count >= 8 else { throw CheckpointError(path, "truncated: \(file.count) bytes, not even the 8-byte header length") }
        let headerLength = file[0..<8].enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
        guard headerLength <= UInt64(headerLimit) else {
            throw CheckpointError(path, "header length \(headerLength) bytes is absurd (limit \(headerLimit)); not a digits checkpoint or corrupt")
        }
        guard 8 + Int(headerLength) <= file.count else {
            throw CheckpointError(path, "truncated: the header claims \(headerLength) bytes but the file has \(file.count - 8) after the length")
        }
        var headerBytes = Array(file[8..<(8 + Int(headerLength))])
        guard let object = try? JSONSerialization.jsonObject(with: Data(headerBytes)), let header = object as? [String: Any] else {
            throw CheckpointError(path, "the header is not valid JSON (corrupt file)")
        }
        guard let rawMeta = header["__metadata__"] as? [String: Any] else {
            throw CheckpointError(path, "no __metadata__ in the header; not a digits checkpoint")
        }
        var metadata: [String: String] = [:]
        for (k, v) in rawMeta {
            guard let s = v as? String else { throw CheckpointError(path, "metadata \(k) is not a string") }
            metadata[k] = s
        }
        guard let headerDigest = metadata["header_sha256"], headerDigest.count == 64,
              let at = find(Array("\"header_sha256\":\"\(headerDigest)\"".utf8), in: headerBytes) else {
            throw CheckpointError(path, "no header checksum; not a digits checkpoint or corrupt")
        }
        let first = at + "\"header_sha256\":\"".utf8.count
        for i in 0..<64 { headerBytes[first + i] = 0x30 }
        guard SHA256.hex(headerBytes) == headerDigest else {
            throw CheckpointError(path, "header checksum mismatch: the header is corrupt")
        }
        return (header, metadata, 8 + Int(headerLength))
    }

    /// One tensor entry of the header, read from the data section: every number from the file is
    /// checked before any arithmetic or allocation.
    static func tensor(_ name: String, entry value: Any, file: [UInt8], dataStart: Int, path: String) throws -> StoredTensor {
        let data = file[dataStart...]
        guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
              let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
            throw CheckpointError(path, "tensor \(name) has a malformed entry")
        }
        guard dtype == "F32" else { throw CheckpointError(path, "tensor \(name) has dtype \(dtype); digits checkpoints hold F32") }
        // Every number here comes from the file: checked before any arithmetic or allocation.
        guard shape.allSatisfy({ $0 >= 0 }) else { throw CheckpointError(path, "tensor \(name) has a negative dimension in shape \(shape)") }
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= data.count / 4 else {
                throw CheckpointError(path, "tensor \(name): shape \(shape) holds more floats than the \(data.count)-byte data section")
            }
            count = product
        }
        guard offsets[0] >= 0, offsets[1] >= offsets[0] else {
            throw CheckpointError(path, "tensor \(name) has data offsets \(offsets), not a range of the data section")
        }
        guard offsets[1] - offsets[0] == count * 4 else {
            throw CheckpointError(path, "tensor \(name): shape \(shape) does not match its \(offsets[1] - offsets[0]) bytes")
        }
        guard offsets[1] <= data.count else {
            throw CheckpointError(path, "truncated: tensor \(name) ends at byte \(offsets[1]) of a \(data.count)-byte data section")
        }
        var values = [Float](repeating: 0, count: count)
        values.withUnsafeMutableBytes { out in
            file.withUnsafeBytes { raw in
                out.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[(dataStart + offsets[0])..<(dataStart + offsets[1])]))
            }
        }
        if UInt32(1).littleEndian != 1 { values = values.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) } }
        return StoredTensor(name: name, shape: shape, values: values)
    }

    /// No two tensors share bytes, nothing follows the last one, and the data section's checksum holds.
    static func checkLayout(_ header: [String: Any], data: ArraySlice<UInt8>, hasTensors: Bool, metadata: [String: String],
                            path: String) throws {
        // Tensors may not share bytes (Python's safetensors refuses overlapping offsets too).
        let ranges = header.compactMap { entry -> (name: String, range: [Int])? in
            guard entry.key != "__metadata__", let offsets = (entry.value as? [String: Any])?["data_offsets"] as? [Int] else { return nil }
            return (entry.key, offsets)
        }.filter { $0.range[1] > $0.range[0] }.sorted { $0.range[0] < $1.range[0] }
        for (before, after) in zip(ranges, ranges.dropFirst()) where after.range[0] < before.range[1] {
            throw CheckpointError(path, "tensors \(before.name) and \(after.name) overlap (bytes \(before.range) and \(after.range))")
        }
        let expectedEnd = !hasTensors ? 0 : (header.compactMap { ($0.value as? [String: Any])?["data_offsets"] as? [Int] }.map { $0[1] }.max() ?? 0)
        if data.count > expectedEnd {
            throw CheckpointError(path, "\(data.count - expectedEnd) unexpected bytes after the last tensor")
        }
        guard let tensorDigest = metadata["tensor_sha256"] else { throw CheckpointError(path, "no tensor checksum in the metadata") }
        guard SHA256.hex(data) == tensorDigest else {
            throw CheckpointError(path, "tensor checksum mismatch: the tensor bytes are corrupt")
        }
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        outer: for i in 0...(haystack.count - needle.count) {
            for j in 0..<needle.count where haystack[i + j] != needle[j] { continue outer }
            return i
        }
        return nil
    }
}
