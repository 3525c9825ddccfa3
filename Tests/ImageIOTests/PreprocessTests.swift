import Foundation
import ImageIO
import Testing

final class TempDir {
    let path = NSTemporaryDirectory() + "digits-img-" + UUID().uuidString
    init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }
}

/// A 200x100 picture with a 40x4 bar near the top-left corner.
func barPicture(ink: Float, paper: Float) -> [Float] {
    var v = [Float](repeating: paper, count: 200 * 100)
    for y in 10..<14 { for x in 10..<50 { v[y * 200 + x] = ink } }
    return v
}

@Suite struct PreprocessTests {
    let dir = TempDir()

    func prepared(_ file: String) throws -> DigitPreprocessor.Result {
        try DigitPreprocessor.prepare(try PNGReader.readGrey(file), path: file)
    }

    /// The bar must come out 20 px long, light on black, centred in 28x28.
    func expectCentredBar(_ r: DigitPreprocessor.Result, _ label: String) {
        let ink = (0..<784).filter { r.pixels[$0] > 128 }
        let xs = ink.map { $0 % 28 }, ys = ink.map { $0 / 28 }
        #expect(xs.max()! - xs.min()! + 1 == 20, "\(label): bar length \(xs.max()! - xs.min()! + 1)")
        #expect(ys.max()! - ys.min()! + 1 <= 3, "\(label): bar thickness")
        let mass = r.pixels.reduce(0, +)
        let cx = (0..<784).reduce(Float(0)) { $0 + Float($1 % 28) * r.pixels[$1] } / mass
        let cy = (0..<784).reduce(Float(0)) { $0 + Float($1 / 28) * r.pixels[$1] } / mass
        #expect(abs(cx - 14) <= 0.5 && abs(cy - 14) <= 0.5, "\(label): centre (\(cx), \(cy))")
        #expect(r.pixels[0] == 0 && r.pixels[783] == 0, "\(label): background black")
    }

    @Test func darkBarOnWhiteBecomesACentredLightBar() throws {
        let grey = barPicture(ink: 0, paper: 1).map { UInt8($0 * 255) }
        let file = dir.write("dark.png", try encodePNG(width: 200, height: 100, colorType: 0, bitDepth: 8, samples: grey))
        let r = try prepared(file)
        #expect(r.inverted)
        expectCentredBar(r, "dark on light")
    }

    @Test func lightBarOnBlackIsNotInverted() throws {
        let grey = barPicture(ink: 1, paper: 0).map { UInt8($0 * 255) }
        let file = dir.write("light.png", try encodePNG(width: 200, height: 100, colorType: 0, bitDepth: 8, samples: grey))
        let r = try prepared(file)
        #expect(!r.inverted)
        expectCentredBar(r, "light on dark")
    }

    @Test func rgbaWithTransparencyIsInkOverWhitePaper() throws {
        // Transparent everywhere but an opaque black bar (a drawing app's export).
        var rgba = [UInt8]()
        for v in barPicture(ink: 1, paper: 0) { rgba += v > 0 ? [0, 0, 0, 255] : [0, 0, 0, 0] }
        let file = dir.write("rgba.png", try encodePNG(width: 200, height: 100, colorType: 6, bitDepth: 8, samples: rgba))
        let r = try prepared(file)
        #expect(r.inverted)
        expectCentredBar(r, "RGBA")
    }

    @Test func sixteenBitGrey() throws {
        var samples = [UInt8]()
        for v in barPicture(ink: 0.05, paper: 0.95) { let x = UInt16(v * 65535); samples += [UInt8(x >> 8), UInt8(x & 0xff)] }
        let file = dir.write("sixteen.png", try encodePNG(width: 200, height: 100, colorType: 0, bitDepth: 16, samples: samples))
        let image = try PNGReader.readGrey(file)
        #expect(image.width == 200 && image.height == 100)
        expectCentredBar(try DigitPreprocessor.prepare(image, path: file), "16-bit")
    }

    @Test func tallDigitsKeepTheirAspect() throws {
        var grey = [UInt8](repeating: 255, count: 60 * 80)
        for y in 10..<70 { for x in 20..<35 { grey[y * 60 + x] = 0 } }   // 15 wide, 60 tall
        let file = dir.write("tall.png", try encodePNG(width: 60, height: 80, colorType: 0, bitDepth: 8, samples: grey))
        let r = try prepared(file)
        let ink = (0..<784).filter { r.pixels[$0] > 128 }
        #expect(ink.map { $0 / 28 }.max()! - ink.map { $0 / 28 }.min()! + 1 == 20)
        #expect(ink.map { $0 % 28 }.max()! - ink.map { $0 % 28 }.min()! + 1 == 5)
    }

    func error(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return "\(error)" }
    }

    @Test func badInputsSayWhatIsWrong() throws {
        let missing = dir.path + "/nope.png"
        #expect(error { _ = try PNGReader.readGrey(missing) } == "\(missing): no such file")
        let text = dir.write("text.png", Array("just some text".utf8))
        #expect(error { _ = try PNGReader.readGrey(text) } == "\(text): not a PNG file")
        let good = try encodePNG(width: 50, height: 50, colorType: 0, bitDepth: 8, samples: [UInt8](repeating: 7, count: 2500))
        let cut = dir.write("cut.png", Array(good.prefix(good.count - 30)))
        #expect(error { _ = try PNGReader.readGrey(cut) }?.hasPrefix("\(cut): truncated or corrupt PNG") == true)
        // A header claiming 100000 x 100000 pixels, with almost no data behind it.
        var huge = Array(good.prefix(33))
        huge.replaceSubrange(16..<24, with: bigEndian(100_000) + bigEndian(100_000))
        let crc = crc32Of(Array(huge[12..<29]))
        huge.replaceSubrange(29..<33, with: bigEndian(crc))
        huge += Array(good[33...])
        let big = dir.write("huge.png", huge)
        #expect(error { _ = try PNGReader.readGrey(big) } == "\(big): 100000x100000 pixels is more than the 40-megapixel limit; refusing to allocate")
        let blank = dir.write("blank.png", try encodePNG(width: 40, height: 40, colorType: 0, bitDepth: 8, samples: [UInt8](repeating: 250, count: 1600)))
        #expect(error { _ = try DigitPreprocessor.prepare(try PNGReader.readGrey(blank), path: blank) }?.contains("no ink found") == true)
    }
}

func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

/// CRC-32 (PNG's), bitwise.
func crc32Of(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return c ^ 0xffff_ffff
}
