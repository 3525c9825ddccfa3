import CJPEG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// JPEG files (photos of handwriting), through libjpeg-turbo: baseline and progressive, grey, YCbCr
/// or RGB, read as luminance. Damaged data is an error, not a picture half filled with grey.
public enum JPEGReader {
    /// Images with more pixels than this are refused before anything is decoded: a few bytes of
    /// header can claim 65,500 x 65,500 pixels, and a progressive file needs its whole image's
    /// coefficients in memory (up to 6 bytes a pixel). Phones take 12 to 50 megapixels.
    public static let maximumPixels = 100_000_000
    /// Larger images are decoded at 1/2, 1/4 or 1/8 of their width and height (libjpeg's DCT
    /// scaling, nearly free), keeping memory small; the digit ends up 20 pixels tall anyway.
    public static let maximumDecodedPixels = 16_000_000

    /// True when `bytes` start with a JPEG start-of-image marker and the marker after it.
    public static func hasSignature(_ bytes: [UInt8]) -> Bool { bytes.starts(with: [0xFF, 0xD8, 0xFF]) }

    /// Reads a JPEG file.
    public static func readGrey(_ path: String) throws -> GreyImage {
        try readGrey(try ImageFile.contents(of: path), name: path)
    }

    /// Decodes JPEG bytes (named `name` in errors) to grey values.
    public static func readGrey(_ bytes: [UInt8], name: String) throws -> GreyImage {
        guard hasSignature(bytes) else { throw ImageIOError("\(name): not a JPEG file (\(ImageFile.startDescription(bytes)))") }
        var width: UInt32 = 0, height: UInt32 = 0, outputWidth: UInt32 = 0, outputHeight: UInt32 = 0
        var pixels: UnsafeMutablePointer<UInt8>?
        var message = [CChar](repeating: 0, count: 256)
        let status = cjpeg_read_grey(bytes, bytes.count, UInt(maximumPixels), UInt(maximumDecodedPixels), &width, &height,
                                     &outputWidth, &outputHeight, &pixels, &message, 256)
        defer { free(pixels) }
        switch status {
        case 0: break
        case 2:
            throw ImageIOError("\(name): \(width)x\(height) pixels is more than the \(maximumPixels / 1_000_000)-megapixel limit; refusing to decode")
        case 3:
            throw ImageIOError("\(name): a CMYK JPEG (print colours), which digits does not read; save it as an RGB or grey JPEG")
        default:
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError("\(name): truncated or corrupt JPEG (libjpeg: \(text))")
        }
        guard let pixels, outputWidth > 0, outputHeight > 0 else { throw ImageIOError("\(name): libjpeg returned no pixels") }
        let count = Int(outputWidth) * Int(outputHeight)
        var values = [Float](repeating: 1, count: count)
        for i in 0..<count { values[i] = Float(pixels[i]) / 255 }
        return GreyImage(width: Int(outputWidth), height: Int(outputHeight), values: values)
    }
}
