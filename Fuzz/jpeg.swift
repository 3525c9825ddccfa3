// Fuzz target: a JPEG as `digits predict` reads one, from memory (as from standard input):
// ImageFile.readGrey (the first bytes choose the reader), JPEGReader.readGrey (libjpeg-turbo
// through CJPEG: its fatal errors longjmp inside the C shim to a status; damage is an error; the
// pixel limit and DCT scaling), then DigitPreprocessor.prepare.
import ImageIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let image: GreyImage
    do {
        image = try ImageFile.readGrey(bytes, name: "input.jpg")
    } catch {
        let text = "\(error)"
        require(text.hasPrefix("input.jpg: "), "an error that does not name the input: \(text)")
        return 0
    }
    require(image.width > 0 && image.height > 0 && image.values.count == image.width * image.height)
    if JPEGReader.hasSignature(bytes) {
        require(image.width * image.height <= JPEGReader.maximumDecodedPixels, "decoded \(image.width)x\(image.height)")
    }
    require(image.values.allSatisfy { $0 >= 0 && $0 <= 1.0001 }, "grey values outside 0...1")
    guard let prepared = try? DigitPreprocessor.prepare(image, path: "input.jpg") else { return 0 }
    require(prepared.pixels.count == 784)
    require(prepared.pixels.allSatisfy { $0 >= 0 && $0 <= 255.01 }, "prepared pixels outside 0...255")
    return 0
}
