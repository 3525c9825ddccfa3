// Fuzz target: a user's image as `digits predict` reads one: PNGReader.readGrey (libpng's
// simplified API through CPNG, any colour type and bit depth, alpha over white), then
// DigitPreprocessor.prepare (polarity, ink box, area-averaged scaling, centring in 28x28).
// A JPEG or any other file is refused by the PNG signature check, which this covers too (the
// `jpeg` target covers ImageFile's choice of reader and JPEGReader).
import ImageIO
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The input as a file, for the path-based reader: one per process, in FUZZ_SCRATCH (or /tmp).
let inputPath = (getenv("FUZZ_SCRATCH").map { String(cString: $0) } ?? "/tmp") + "/png-input-\(getpid()).png"

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let fd = open(inputPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot create \(inputPath)")
    var done = 0
    while done < size {
        let n = write(fd, data + done, size - done)
        require(n > 0, "cannot write \(inputPath)")
        done += n
    }
    close(fd)

    guard let image = try? PNGReader.readGrey(inputPath) else { return 0 }
    require(image.width > 0 && image.height > 0 && image.values.count == image.width * image.height)
    require(image.values.allSatisfy { $0 >= 0 && $0 <= 1.0001 }, "grey values outside 0...1")
    guard let prepared = try? DigitPreprocessor.prepare(image, path: inputPath) else { return 0 }
    require(prepared.pixels.count == 784)
    require(prepared.pixels.allSatisfy { $0 >= 0 && $0 <= 255.01 }, "prepared pixels outside 0...255")
    return 0
}
