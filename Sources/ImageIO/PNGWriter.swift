import CZlib

public struct ImageIOError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// An 8-bit image in memory, row-major, 1 (grey) or 3 (RGB) channels.
public struct Image8: Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int = 1, fill: UInt8 = 0) {
        self.width = width
        self.height = height
        self.channels = channels
        pixels = [UInt8](repeating: fill, count: width * height * channels)
    }

    /// Copies a grey 28x28-style tile (values 0...255 as Float) at (x, y), magnified `zoom` times.
    public mutating func place(_ tile: UnsafePointer<Float>, tileWidth: Int, tileHeight: Int, x: Int, y: Int, zoom: Int = 1) {
        for ty in 0..<(tileHeight * zoom) {
            for tx in 0..<(tileWidth * zoom) {
                let v = tile[(ty / zoom) * tileWidth + tx / zoom]
                let byte = UInt8(max(0, min(255, v.rounded())))
                let px = x + tx, py = y + ty
                guard px >= 0, py >= 0, px < width, py < height else { continue }
                for c in 0..<channels { pixels[(py * width + px) * channels + c] = byte }
            }
        }
    }

    /// PNG bytes (colour type 0 grey or 2 RGB, 8-bit, no interlace).
    public func pngData() throws -> [UInt8] {
        try encodePNG(width: width, height: height, colorType: channels == 1 ? 0 : 2, bitDepth: 8, samples: pixels)
    }
}

func bigEndian32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

/// A PNG file from raw samples, row-major without filter bytes: colour type 0 grey, 2 RGB,
/// 4 grey+alpha, 6 RGBA; bit depth 8 or 16 (16-bit samples big-endian, as PNG stores them).
public func encodePNG(width: Int, height: Int, colorType: UInt8, bitDepth: UInt8, samples: [UInt8]) throws -> [UInt8] {
    let channels: Int = [0: 1, 2: 3, 4: 2, 6: 4][Int(colorType)] ?? 1
    let rowBytes = width * channels * Int(bitDepth) / 8
    guard samples.count == rowBytes * height else { throw ImageIOError("PNG encoder: \(samples.count) bytes for \(width)x\(height)") }
    var raw = [UInt8]()
    raw.reserveCapacity(height * (rowBytes + 1))
    for y in 0..<height {
        raw.append(0)   // filter type: none
        raw.append(contentsOf: samples[(y * rowBytes)..<((y + 1) * rowBytes)])
    }
    var compressedLength = compressBound(uLong(raw.count))
    var compressed = [UInt8](repeating: 0, count: Int(compressedLength))
    let status = compressed.withUnsafeMutableBufferPointer { out in
        raw.withUnsafeBufferPointer { input in compress2(out.baseAddress, &compressedLength, input.baseAddress, uLong(raw.count), 9) }
    }
    guard status == Z_OK else { throw ImageIOError("zlib could not compress the image (status \(status))") }
    compressed.removeLast(compressed.count - Int(compressedLength))
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    func chunk(_ type: String, _ data: [UInt8]) {
        png += bigEndian32(UInt32(data.count))
        let body = Array(type.utf8) + data
        png += body
        let crc = body.withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
        png += bigEndian32(UInt32(crc))
    }
    chunk("IHDR", bigEndian32(UInt32(width)) + bigEndian32(UInt32(height)) + [bitDepth, colorType, 0, 0, 0])
    chunk("IDAT", compressed)
    chunk("IEND", [])
    return png
}
