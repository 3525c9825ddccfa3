import CPNG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A user's image, as grey values in 0...1 where 1 is white (paper) and 0 black, after
/// compositing any transparency over white paper.
public struct GreyImage: Sendable {
    public let width: Int
    public let height: Int
    public var values: [Float]

    public init(width: Int, height: Int, values: [Float]) {
        self.width = width
        self.height = height
        self.values = values
    }
}

public enum PNGReader {
    /// Images larger than this are refused before their pixels are allocated.
    public static let maximumPixels = 40_000_000

    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// True when `bytes` start with PNG's eight-byte signature.
    public static func hasSignature(_ bytes: [UInt8]) -> Bool { bytes.starts(with: signature) }

    /// Reads a PNG file of any colour type and bit depth (through libpng).
    public static func readGrey(_ path: String) throws -> GreyImage {
        try readGrey(try ImageFile.contents(of: path), name: path)
    }

    /// Decodes PNG bytes (named `name` in errors) of any colour type and bit depth (through libpng).
    public static func readGrey(_ bytes: [UInt8], name: String) throws -> GreyImage {
        // The signature first, so a JPEG or a text file gets a plain answer.
        guard hasSignature(bytes) else {
            throw ImageIOError("\(name): not a PNG file" + (bytes.count < 8 ? " (only \(bytes.count) bytes)" : ""))
        }
        var width: UInt32 = 0, height: UInt32 = 0
        var pixels: UnsafeMutablePointer<UInt8>?
        var message = [CChar](repeating: 0, count: 256)
        let status = cpng_read_rgba(bytes, bytes.count, UInt(maximumPixels), &width, &height, &pixels, &message, 256)
        defer { free(pixels) }
        switch status {
        case 0: break
        case 2:
            throw ImageIOError("\(name): \(width)x\(height) pixels is more than the \(maximumPixels / 1_000_000)-megapixel limit; refusing to allocate")
        default:
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError("\(name): truncated or corrupt PNG (libpng: \(text))")
        }
        guard let pixels else { throw ImageIOError("\(name): libpng returned no pixels") }
        let count = Int(width) * Int(height)
        var values = [Float](repeating: 1, count: count)
        for i in 0..<count {
            let r = Float(pixels[4 * i]), g = Float(pixels[4 * i + 1]), b = Float(pixels[4 * i + 2])
            let a = Float(pixels[4 * i + 3]) / 255
            let luminance = (0.299 * r + 0.587 * g + 0.114 * b) / 255
            values[i] = a * luminance + (1 - a)   // over white paper
        }
        return GreyImage(width: Int(width), height: Int(height), values: values)
    }
}
