// Fuzz target: a checkpoint file as digits reads one (Training's Safetensors.readFile, decode,
// CheckpointStore.verify, then the model spec in its metadata).
//
// Each input is tried twice: as it is, and "resealed": where the header holds
// "tensor_sha256":"<64 bytes>" and "header_sha256":"<64 bytes>", those are overwritten with the
// digests of the input's own data section and header, so mutations reach the parsing behind
// the checksums instead of stopping at a mismatch.
@testable import Datasets
import NeuralNet
@testable import Training
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

/// The input as a file, for the path-based reader: one per process, in FUZZ_SCRATCH (or /tmp).
let inputPath = (getenv("FUZZ_SCRATCH").map { String(cString: $0) } ?? "/tmp") + "/safetensors-input-\(getpid())"

func write(_ bytes: [UInt8], to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot create \(path)")
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        require(n > 0, "cannot write \(path)")
        done += n
    }
    close(fd)
}

/// The offset just after `"key":"` when 64 bytes and a closing quote follow it, else nil.
func digestField(_ key: String, in bytes: ArraySlice<UInt8>) -> Int? {
    let needle = Array("\"\(key)\":\"".utf8)
    guard bytes.count >= needle.count + 65 else { return nil }
    var i = bytes.startIndex
    while i + needle.count + 65 <= bytes.endIndex {
        if bytes[i..<(i + needle.count)].elementsEqual(needle) && bytes[i + needle.count + 64] == 0x22 {
            return i + needle.count
        }
        i += 1
    }
    return nil
}

/// The input with its two checksums made to match it, or nil when it has no room for them.
func resealed(_ input: [UInt8]) -> [UInt8]? {
    guard input.count >= 8 else { return nil }
    let length = input[0..<8].enumerated().reduce(UInt64(0)) { $0 | (UInt64($1.element) << (8 * UInt64($1.offset))) }
    guard length <= UInt64(input.count - 8) else { return nil }
    let headerEnd = 8 + Int(length)
    var file = input
    if let at = digestField("tensor_sha256", in: file[8..<headerEnd]) {
        let digest = Array(SHA256.hex(Array(file[headerEnd...])).utf8)
        file.replaceSubrange(at..<(at + 64), with: digest)
    }
    guard let at = digestField("header_sha256", in: file[8..<headerEnd]) else { return nil }
    file.replaceSubrange(at..<(at + 64), with: Array(repeating: 0x30, count: 64))
    let digest = Array(SHA256.hex(Array(file[8..<headerEnd])).utf8)
    file.replaceSubrange(at..<(at + 64), with: digest)
    return file
}

func check(_ file: [UInt8]) {
    // The path-based reader returns the file's bytes unchanged, or refuses it.
    write(file, to: inputPath)
    if let read = try? Safetensors.readFile(inputPath) { require(read == file, "readFile changed the bytes") }

    guard let decoded = try? Safetensors.decode(file, path: "<fuzz>") else { return }
    for tensor in decoded.tensors {
        require(tensor.values.count == tensor.shape.reduce(1, *), "tensor \(tensor.name): count and shape disagree")
    }
    guard let checkpoint = try? CheckpointStore.verify(decoded, path: "<fuzz>"),
          let model = checkpoint.metadata["model"], let spec = try? ModelSpec(parsing: model) else { return }
    // A spec that parses prints back to text that parses to the same spec.
    require((try? ModelSpec(parsing: spec.description)) == spec, "model spec '\(model)' does not round-trip")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    check(input)
    if let sealed = resealed(input), sealed != input { check(sealed) }
    return 0
}
