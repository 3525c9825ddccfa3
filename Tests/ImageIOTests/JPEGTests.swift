import Foundation
import ImageIO
import Testing

/// JPEG in (libjpeg-turbo through CJPEG): grey and colour files decode to their luminance within
/// JPEG's error; damaged, huge or CMYK files get a sentence naming the file; a file's first bytes,
/// not its name, choose the reader.
@Suite struct JPEGTests {
    let dir = TempDir()

    /// Flat 16x16 squares: each 8x8 DCT block (and each 4:2:0 chroma block) is uniform, so only
    /// rounding and the DC quantiser's step stand between a value and its decoded value.
    static let greys: [UInt8] = [0, 37, 90, 128, 171, 214, 255, 7, 250, 64, 192, 100]
    static let colours: [(UInt8, UInt8, UInt8)] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 150, 50),
                                                   (255, 255, 255), (0, 0, 0), (30, 200, 220), (120, 60, 180)]

    func squares<T>(_ values: [T], columns: Int) -> (width: Int, height: Int, at: (Int, Int) -> T) {
        (16 * columns, 16 * ((values.count + columns - 1) / columns), { x, y in values[min(values.count - 1, (y / 16) * columns + x / 16)] })
    }

    func error(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return "\(error)" }
    }

    @Test func greyDecodesToItsValues() throws {
        let (w, h, at) = squares(Self.greys, columns: 4)
        var image = Image8(width: w, height: h)
        for y in 0..<h { for x in 0..<w { image.pixels[y * w + x] = at(x, y) } }
        let file = dir.write("grey.jpg", try image.jpegData(quality: 95))
        let grey = try JPEGReader.readGrey(file)
        #expect(grey.width == w && grey.height == h)
        let worst = (0..<(w * h)).map { abs(grey.values[$0] * 255 - Float(at($0 % w, $0 / w))) }.max() ?? 99
        #expect(worst <= 2, "largest error \(worst) of 255")
    }

    @Test func colourDecodesToItsLuminance() throws {
        let (w, h, at) = squares(Self.colours, columns: 4)
        var image = Image8(width: w, height: h, channels: 3)
        for y in 0..<h { for x in 0..<w {
            let (r, g, b) = at(x, y)
            image.pixels.replaceSubrange((3 * (y * w + x))..<(3 * (y * w + x) + 3), with: [r, g, b])
        } }
        let file = dir.write("colour.jpg", try image.jpegData(quality: 95))
        let grey = try JPEGReader.readGrey(file)
        #expect(grey.width == w && grey.height == h)
        var worst: Float = 0
        for y in 0..<h { for x in 0..<w {
            let (r, g, b) = at(x, y)
            let luminance = 0.299 * Float(r) + 0.587 * Float(g) + 0.114 * Float(b)   // what PNGReader computes
            worst = max(worst, abs(grey.values[y * w + x] * 255 - luminance))
        } }
        #expect(worst <= 3, "largest error \(worst) of 255")
    }

    /// Written by another encoder (Pillow 13: a 32x32 RGB image, top-left 16x16 (200, 40, 40),
    /// top-right (40, 40, 200), bottom (250, 250, 250); quality 95, progressive).
    static let pillowProgressive = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAIBAQEBAQIBAQECAgICAgQDAgICAgUEBAMEBgUGBgYFBgYGBwkIBgcJBwYGCAsICQoKCgoKBggLDAsKDAkKCgr/2wBDAQICAgICAgUDAwUKBwYHCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgr/wgARCAAgACADASIAAhEBAxEB/8QAFwABAAMAAAAAAAAAAAAAAAAAAAYHCf/EABcBAQEBAQAAAAAAAAAAAAAAAAgABQb/2gAMAwEAAhADEAAAAavHEqCBhrEXYAF/aCv/xAAUEAEAAAAAAAAAAAAAAAAAAABA/9oACAEBAAEFAgf/xAAUEQEAAAAAAAAAAAAAAAAAAAAg/9oACAEDAQE/AR//xAAUEQEAAAAAAAAAAAAAAAAAAAAg/9oACAECAQE/AR//xAAUEAEAAAAAAAAAAAAAAAAAAABA/9oACAEBAAY/Agf/xAAUEAEAAAAAAAAAAAAAAAAAAABA/9oACAEBAAE/IQf/2gAMAwEAAgADAAAAEAAAAP/EABQRAQAAAAAAAAAAAAAAAAAAACD/2gAIAQMBAT8QH//EABQRAQAAAAAAAAAAAAAAAAAAACD/2gAIAQIBAT8QH//EABQQAQAAAAAAAAAAAAAAAAAAAED/2gAIAQEAAT8QB//Z"

    /// Pillow 13: a 16x16 CMYK image (0, 200, 200, 30), quality 80 (Adobe marker, YCCK).
    static let pillowCMYK = "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwAGBAUGBQQGBgUGBwcGCAoQCgoJCQoUDg8MEBcUGBgXFBYWGh0lHxobIxwWFiAsICMmJykqKRkfLTAtKDAlKCko/8AAFAgAEAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5+v/aAA4EQwBNAFkASwAAPwD6prx6vHq+gaKKKKKKKKKKKK//2Q=="

    @Test func anotherEncodersProgressiveColourFile() throws {
        let bytes = try #require(Data(base64Encoded: Self.pillowProgressive).map { [UInt8]($0) })
        let grey = try ImageFile.readGrey(bytes, name: "pillow.jpg")
        #expect(grey.width == 32 && grey.height == 32)
        // Pillow's own "L" conversion of the decoded file gives 88, 58 and 250.
        for (x, y, expected) in [(4, 4, 88), (20, 4, 58), (4, 20, 250), (28, 28, 250)] as [(Int, Int, Float)] {
            #expect(abs(grey.values[y * 32 + x] * 255 - expected) <= 2, "(\(x), \(y)): \(grey.values[y * 32 + x] * 255)")
        }
    }

    @Test func aDarkBarOnPaperIsPreparedLikeItsPNG() throws {
        var image = Image8(width: 200, height: 100)
        let bar = barPicture(ink: 0, paper: 1)
        for i in 0..<bar.count { image.pixels[i] = UInt8(bar[i] * 255) }
        let jpeg = dir.write("bar.jpg", try image.jpegData(quality: 90))
        let r = try DigitPreprocessor.prepare(try ImageFile.readGrey(jpeg), path: jpeg)
        #expect(r.inverted)
        // As PreprocessTests finds for the PNG: 20 px long, light on black, centred; JPEG's ringing may thicken it.
        let ink = (0..<784).filter { r.pixels[$0] > 128 }
        let xs = ink.map { $0 % 28 }, ys = ink.map { $0 / 28 }
        #expect(xs.max()! - xs.min()! + 1 == 20 && ys.max()! - ys.min()! + 1 <= 4)
        let mass = r.pixels.reduce(0, +)
        let cx = (0..<784).reduce(Float(0)) { $0 + Float($1 % 28) * r.pixels[$1] } / mass
        let cy = (0..<784).reduce(Float(0)) { $0 + Float($1 / 28) * r.pixels[$1] } / mass
        #expect(abs(cx - 14) <= 0.5 && abs(cy - 14) <= 0.5, "centre (\(cx), \(cy))")
        #expect(r.pixels[0] == 0 && r.pixels[783] == 0)
    }

    @Test func theFirstBytesChooseTheReaderNotTheName() throws {
        var image = Image8(width: 40, height: 40, fill: 255)
        for y in 10..<30 { for x in 18..<22 { image.pixels[y * 40 + x] = 0 } }
        let jpegNamedPNG = dir.write("photo.png", try image.jpegData())
        let pngNamedJPEG = dir.write("scan.jpg", try image.pngData())
        #expect(try ImageFile.readGrey(jpegNamedPNG).width == 40)
        #expect(try ImageFile.readGrey(pngNamedJPEG).width == 40)
    }

    @Test func aLargePhotoIsDecodedAtAFractionOfItsSize() throws {
        // 4,200 x 4,000 = 16.8 megapixels, just over what is decoded at full size.
        let image = Image8(width: 4200, height: 4000, fill: 200)
        let grey = try JPEGReader.readGrey(try image.jpegData(quality: 50), name: "big.jpg")
        #expect(grey.width == 2100 && grey.height == 2000)
        #expect(abs(grey.values[1_000_000] * 255 - 200) <= 2)
    }

    @Test func damagedFilesGetASentenceNamingTheFile() throws {
        var image = Image8(width: 64, height: 64, channels: 3)
        for i in 0..<image.pixels.count { image.pixels[i] = UInt8((i * 37) % 256) }   // busy: plenty of scan data
        let good = try image.jpegData(quality: 90)
        let scanStart = try #require(markerOffset(good, 0xDA))

        let cut = dir.write("cut.jpg", Array(good.prefix(scanStart + 200)))
        #expect(error { _ = try ImageFile.readGrey(cut) } == "\(cut): truncated or corrupt JPEG (libjpeg: Premature end of JPEG file)")

        // The scan ends at a marker half way: libjpeg would fill the rest with grey.
        let marker = dir.write("marker.jpg", Array(good.prefix(scanStart + 200)) + [0xFF, 0xD9])
        #expect(error { _ = try ImageFile.readGrey(marker) }?.hasPrefix("\(marker): truncated or corrupt JPEG (libjpeg: Corrupt JPEG data") == true)

        // Nothing but the start-of-image marker and junk.
        let junk = dir.write("junk.jpg", [0xFF, 0xD8, 0xFF] + Array("this is not a JPEG".utf8))
        #expect(error { _ = try ImageFile.readGrey(junk) }?.hasPrefix("\(junk): truncated or corrupt JPEG (libjpeg: ") == true)

        // A file whose quantisation tables are gone (missing Huffman tables libjpeg replaces with the standard ones).
        let noTables = dir.write("no-tables.jpg", removingSegments(good, 0xDB))
        #expect(error { _ = try ImageFile.readGrey(noTables) }?.hasPrefix("\(noTables): truncated or corrupt JPEG (libjpeg: ") == true)

        // Every prefix of a good file is refused with a sentence, never a crash or exit.
        for length in stride(from: 0, to: good.count - 2, by: 7) {
            let text = error { _ = try ImageFile.readGrey(Array(good.prefix(length)), name: "prefix.jpg") }
            #expect(text?.hasPrefix("prefix.jpg: ") == true, "\(length) bytes: \(text ?? "decoded")")
        }
    }

    @Test func aHugeFrameIsRefusedBeforeDecoding() throws {
        var bytes = try Image8(width: 16, height: 16).jpegData()
        let frame = try #require(markerOffset(bytes, 0xC0))
        // FF C0, length (2), precision (1), height (2), width (2).
        bytes.replaceSubrange((frame + 5)..<(frame + 9), with: [0xEA, 0x60, 0xEA, 0x60])   // 60000 x 60000
        let file = dir.write("huge.jpg", bytes)
        #expect(error { _ = try ImageFile.readGrey(file) } == "\(file): 60000x60000 pixels is more than the 100-megapixel limit; refusing to decode")
    }

    @Test func cmykAndOtherFormatsAreNamed() throws {
        let cmyk = try #require(Data(base64Encoded: Self.pillowCMYK).map { [UInt8]($0) })
        #expect(error { _ = try ImageFile.readGrey(cmyk, name: "print.jpg") }
                == "print.jpg: a CMYK JPEG (print colours), which digits does not read; save it as an RGB or grey JPEG")
        #expect(error { _ = try ImageFile.readGrey(Array("just some text".utf8), name: "notes.png") }
                == "notes.png: not a PNG file or a JPEG file (it starts with 6A 75 73 74 20 73 6F 6D (\"just som\"))")
        #expect(error { _ = try ImageFile.readGrey(Array("GIF89a".utf8) + [UInt8](repeating: 0, count: 20), name: "a.gif") }
                == "a.gif: not a PNG file or a JPEG file but a GIF image; save or convert it as JPEG or PNG")
        #expect(error { _ = try ImageFile.readGrey([0, 0, 0, 24] + Array("ftypheic".utf8) + [0, 0, 0, 0], name: "IMG_0001.HEIC") }
                == "IMG_0001.HEIC: not a PNG file or a JPEG file but a HEIC image (the photo format of iPhones); save or convert it as JPEG or PNG")
        #expect(error { _ = try ImageFile.readGrey([], name: "<stdin>") } == "<stdin>: empty; no image in it")
        #expect(error { _ = try ImageFile.readGrey(dir.path) } == "\(dir.path): not a regular file")
        #expect(error { _ = try ImageFile.readGrey(dir.path + "/nope.jpg") } == "\(dir.path)/nope.jpg: no such file")
        #expect(error { _ = try JPEGReader.readGrey(try encodePNG(width: 1, height: 1, colorType: 0, bitDepth: 8, samples: [0]), name: "x.jpg") }
                == "x.jpg: not a JPEG file (it starts with 89 50 4E 47 0D 0A 1A 0A)")
    }
}

/// The offset of the first segment with this marker (FF code) in a JPEG's header, or nil.
func markerOffset(_ bytes: [UInt8], _ code: UInt8) -> Int? {
    var i = 2
    while i + 4 <= bytes.count, bytes[i] == 0xFF {
        if bytes[i + 1] == code { return i }
        i += 2 + Int(bytes[i + 2]) << 8 + Int(bytes[i + 3])
    }
    return nil
}

/// The JPEG without its header segments of this marker.
func removingSegments(_ bytes: [UInt8], _ code: UInt8) -> [UInt8] {
    var out = Array(bytes.prefix(2)), i = 2
    while i + 4 <= bytes.count, bytes[i] == 0xFF, bytes[i + 1] != 0xDA {
        let end = i + 2 + Int(bytes[i + 2]) << 8 + Int(bytes[i + 3])
        if bytes[i + 1] != code { out += bytes[i..<end] }
        i = end
    }
    return out + bytes[i...]
}
