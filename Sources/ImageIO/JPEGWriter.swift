import CJPEG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Image8 {
    /// JPEG bytes (baseline, 4:2:0 for RGB), like a phone's photo; quality 1-100.
    public func jpegData(quality: Int = 90) throws -> [UInt8] {
        guard channels == 1 || channels == 3 else { throw ImageIOError("JPEG encoder: \(channels) channels; JPEG holds grey or RGB") }
        guard width > 0, height > 0, width <= 65_500, height <= 65_500 else {
            throw ImageIOError("JPEG encoder: \(width)x\(height) pixels; JPEG holds 1 to 65500 a side")
        }
        var jpeg: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = cjpeg_write(pixels, UInt32(width), UInt32(height), Int32(channels), Int32(max(1, min(100, quality))),
                                 &jpeg, &size, &message, 256)
        defer { free(jpeg) }
        guard status == 0, let jpeg else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw ImageIOError("JPEG encoder: libjpeg: \(text)")
        }
        return Array(UnsafeBufferPointer(start: jpeg, count: Int(size)))
    }
}
