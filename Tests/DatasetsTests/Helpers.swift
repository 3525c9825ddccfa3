import CZlib
import Foundation
@testable import Datasets

/// A scratch directory removed when the value is released.
final class ScratchDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "digits-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }
}

func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff), UInt8(value & 0xff)]
}

/// An IDX file's bytes: magic, big-endian dimensions, data.
func idxBytes(magic: UInt32, dimensions: [Int], data: [UInt8]) -> [UInt8] {
    bigEndian(magic) + dimensions.flatMap { bigEndian(UInt32($0)) } + data
}

func labelFile(_ labels: [UInt8]) -> [UInt8] { idxBytes(magic: 0x801, dimensions: [labels.count], data: labels) }

func imageFile(count: Int, height: Int = 28, width: Int = 28, pixel: (Int, Int) -> UInt8 = { i, p in UInt8((i * 7 + p) % 256) }) -> [UInt8] {
    var data = [UInt8]()
    data.reserveCapacity(count * height * width)
    for i in 0..<count { for p in 0..<(height * width) { data.append(pixel(i, p)) } }
    return idxBytes(magic: 0x803, dimensions: [count, height, width], data: data)
}

/// gzip-compresses bytes with zlib (one member).
func gzip(_ bytes: [UInt8]) -> [UInt8] {
    var stream = z_stream()
    precondition(czlib_deflate_init_gzip(&stream, 6) == Z_OK)
    defer { deflateEnd(&stream) }
    var input = bytes
    var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(bytes.count))) + 64)
    let produced: Int = input.withUnsafeMutableBufferPointer { inBuf in
        output.withUnsafeMutableBufferPointer { outBuf in
            stream.next_in = inBuf.baseAddress
            stream.avail_in = uInt(inBuf.count)
            stream.next_out = outBuf.baseAddress
            stream.avail_out = uInt(outBuf.count)
            precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
            return outBuf.count - Int(stream.avail_out)
        }
    }
    return Array(output[0..<produced])
}

/// Where the real MNIST files are: $MNIST_DIR, the project's data/mnist, or ../shared/data/mnist.
func mnistDirectory() -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    var candidates = [root + "/data/mnist", root + "/../shared/data/mnist"]
    if let env = ProcessInfo.processInfo.environment["MNIST_DIR"] { candidates.insert(env, at: 0) }
    return candidates.first { FileManager.default.fileExists(atPath: $0 + "/train-images-idx3-ubyte.gz")
        || FileManager.default.fileExists(atPath: $0 + "/train-images-idx3-ubyte") }
}
