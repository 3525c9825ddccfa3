import Augmentation
import CZlib
import ImageIO
import Testing

@Suite struct AugmentationGeometryTests {
    let size = 28
    var augmenter: Augmenter { Augmenter(settings: .none, width: size, height: size, seed: 1) }

    /// A test image: a blob of distinct values in the middle.
    func pattern() -> [UInt8] {
        var image = [UInt8](repeating: 0, count: size * size)
        for y in 8..<20 { for x in 6..<22 { image[y * size + x] = UInt8((x * 13 + y * 7) % 200 + 50) } }
        return image
    }

    func warp(_ image: [UInt8], _ map: Affine) -> [Float] {
        var out = [Float](repeating: -1, count: size * size)
        image.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in
            augmenter.warp(i.baseAddress!, with: map, into: o.baseAddress!)
        } }
        return out
    }

    @Test func identityReproducesTheImageExactly() {
        let image = pattern()
        #expect(warp(image, .identity) == image.map(Float.init))
        let noDraw = Affine(rotationDegrees: 0, scaleX: 1, scaleY: 1, shearDegrees: 0, shiftX: 0, shiftY: 0, width: size, height: size)
        #expect(warp(image, noDraw) == image.map(Float.init))
    }

    @Test(arguments: [(3, -2), (-5, 4), (1, 0)])
    func integerTranslationIsAPixelShift(dx: Int, dy: Int) {
        let image = pattern()
        let out = warp(image, Affine(rotationDegrees: 0, scaleX: 1, scaleY: 1, shearDegrees: 0, shiftX: Float(dx), shiftY: Float(dy),
                                     width: size, height: size))
        for y in 0..<size { for x in 0..<size {
            let sx = x - dx, sy = y - dy
            let expected: Float = (sx >= 0 && sy >= 0 && sx < size && sy < size) ? Float(image[sy * size + sx]) : 0
            #expect(out[y * size + x] == expected)
        } }
    }

    @Test func ninetyDegreesIsTheRotatedArray() {
        let image = pattern()
        let out = warp(image, Affine(rotationDegrees: 90, scaleX: 1, scaleY: 1, shearDegrees: 0, shiftX: 0, shiftY: 0,
                                     width: size, height: size))
        // Rotation by +90° about the centre (x right, y down): (x, y) -> (c + (c - y) ... ) i.e. out[y][x] = in[size-1-x][y].
        var worst: Float = 0
        for y in 2..<(size - 2) { for x in 2..<(size - 2) {
            worst = max(worst, abs(out[y * size + x] - Float(image[(size - 1 - x) * size + y])))
        } }
        #expect(worst < 1e-3)
    }

    @Test func scalingACentredDotByTwoDoublesItsExtent() {
        var image = [UInt8](repeating: 0, count: size * size)
        // A 4x4 square centred on the image centre (13.5, 13.5): pixels 12...15.
        for y in 12...15 { for x in 12...15 { image[y * size + x] = 255 } }
        let out = warp(image, Affine(rotationDegrees: 0, scaleX: 2, scaleY: 2, shearDegrees: 0, shiftX: 0, shiftY: 0,
                                     width: size, height: size))
        // Along the centre row and column the ink (in pixels of full intensity) goes from 4 to 8.
        let rowInk = (0..<size).reduce(Float(0)) { $0 + out[13 * size + $1] } / 255
        let columnInk = (0..<size).reduce(Float(0)) { $0 + out[$1 * size + 13] } / 255
        #expect(abs(rowInk - 8) < 0.3 && abs(columnInk - 8) < 0.3, "row \(rowInk), column \(columnInk)")
        // Full intensity where bilinear sampling lands between two inked pixel centres: 12...15 maps to 10.5...16.5.
        #expect((0..<size).filter { out[13 * size + $0] == 255 } == Array(11...16))
        // And it stays centred.
        let centre = (0..<size).reduce(Float(0)) { $0 + Float($1) * out[13 * size + $1] } / (rowInk * 255)
        #expect(abs(centre - 13.5) < 1e-3)
    }

    @Test(arguments: [(5, 1.05, 1), (-8, 0.95, -1.5), (3, 1.0, 0.5)])
    func inkMassIsPreservedForSmallTransforms(rotation: Float, scale: Float, shift: Float) {
        let image = pattern()
        let out = warp(image, Affine(rotationDegrees: rotation, scaleX: scale, scaleY: scale, shearDegrees: 0, shiftX: shift, shiftY: -shift,
                                     width: size, height: size))
        let before = image.reduce(0) { $0 + Double($1) }
        // Mass scales with the area (scale²); compensated here. Bilinear resampling keeps it within 2%.
        let after = out.reduce(0) { $0 + Double($1) } / Double(scale * scale)
        #expect(abs(after / before - 1) < 0.02, "mass ratio \(after / before)")
    }

    @Test func inverseUndoesTheMap() {
        let map = Affine(rotationDegrees: 17, scaleX: 1.1, scaleY: 0.9, shearDegrees: 5, shiftX: 1.5, shiftY: -2, width: size, height: size)
        let both = map.inverse
        let p = (x: Float(3.25), y: Float(20.5))
        let q = (map.a * p.x + map.b * p.y + map.tx, map.c * p.x + map.d * p.y + map.ty)
        let r = (both.a * q.0 + both.b * q.1 + both.tx, both.c * q.0 + both.d * q.1 + both.ty)
        #expect(abs(r.0 - p.x) < 1e-4 && abs(r.1 - p.y) < 1e-4)
    }
}

@Suite struct AugmentationDrawTests {
    func draw(_ augmenter: Augmenter, epoch: Int, id: Int, image: [UInt8]) -> [Float] {
        var out = [Float](repeating: 0, count: 784), scratch = [Float](repeating: 0, count: 3 * 784)
        image.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in scratch.withUnsafeMutableBufferPointer { s in
            augmenter.augment(i.baseAddress!, epoch: epoch, sampleID: id, into: o.baseAddress!, scratch: s.baseAddress!)
        } } }
        return out
    }

    let image: [UInt8] = (0..<784).map { UInt8(($0 * 37) % 256) }

    @Test func aDrawDependsOnlyOnSeedEpochAndSampleID() throws {
        var settings = try AugmentationSettings(parsing: "default")
        settings.elastic = (alpha: 8, sigma: 3)
        // Two augmenters as two ranks would build them; draws in different orders.
        let a = Augmenter(settings: settings, seed: 11), b = Augmenter(settings: settings, seed: 11)
        let first = draw(a, epoch: 3, id: 4711, image: image)
        _ = draw(b, epoch: 0, id: 1, image: image)
        _ = draw(b, epoch: 3, id: 4712, image: image)
        #expect(draw(b, epoch: 3, id: 4711, image: image) == first)
        #expect(draw(a, epoch: 4, id: 4711, image: image) != first)
        #expect(draw(a, epoch: 3, id: 4710, image: image) != first)
        #expect(draw(Augmenter(settings: settings, seed: 12), epoch: 3, id: 4711, image: image) != first)
    }

    @Test func drawsStayWithinTheStatedRanges() throws {
        let settings = try AugmentationSettings(parsing: "rotation=0,scale=0,shift=2")
        let augmenter = Augmenter(settings: settings, seed: 2)
        var shifts = [Float]()
        for id in 0..<500 {
            let t = augmenter.transform(epoch: 0, sampleID: id)
            #expect(t.a == 1 && t.d == 1 && t.b == 0 && t.c == 0)
            #expect(abs(t.tx) <= 2 && abs(t.ty) <= 2)
            shifts.append(t.tx)
        }
        #expect(shifts.max()! > 1.8 && shifts.min()! < -1.8)
    }

    @Test func settingsParseAndRejectNonsense() throws {
        #expect(try AugmentationSettings(parsing: "none").isIdentity)
        let custom = try AugmentationSettings(parsing: "rotation=15, shift=3")
        #expect(custom.rotationDegrees == 15 && custom.shift == 3 && custom.scale == 0.1)
        #expect(try AugmentationSettings(parsing: custom.description) == custom)
        for bad in ["rotation", "rotation=-1", "spin=3", "scale=1.5", "shift=abc"] {
            #expect(throws: AugmentationError.self) { try AugmentationSettings(parsing: bad) }
        }
        #expect(try AugmentationSettings.parseElastic("34,4") == (34, 4))
        #expect(throws: AugmentationError.self) { try AugmentationSettings.parseElastic("34") }
        #expect(throws: AugmentationError.self) { try AugmentationSettings.parseElastic("inf,4") }
    }

    /// Shifts and elastic amplitudes far past the image (1e19 and 1e30 pixels) draw background,
    /// never trap converting a coordinate to Int (they did: `--augment shift=1e19`, `--elastic 1e30,4`).
    @Test func absurdAmplitudesDrawBackground() throws {
        var settings = try AugmentationSettings(parsing: "rotation=0,scale=0,shift=1e19")
        var out = draw(Augmenter(settings: settings, seed: 3), epoch: 0, id: 1, image: image)
        #expect(out.allSatisfy { $0 == 0 })
        settings = try AugmentationSettings(parsing: "none")
        settings.elastic = try AugmentationSettings.parseElastic("1e30,4")
        out = draw(Augmenter(settings: settings, seed: 3), epoch: 0, id: 2, image: image)
        #expect(out.allSatisfy { $0.isFinite })
    }

    /// A sigma whose square underflows smooths nothing, as its limit does; it made every kernel
    /// weight 0/0 = NaN, and so every augmented image black (found by Fuzz/augspec.swift: `--elastic 34,4.1e-39`).
    @Test func elasticSigmaTooSmallToSquareIsNoSmoothing() throws {
        var settings = try AugmentationSettings(parsing: "none")
        settings.elastic = try AugmentationSettings.parseElastic("0,4.1e-39")
        // alpha 0: no displacement, so the identity warp gives the image back (NaN fields gave zeros).
        #expect(draw(Augmenter(settings: settings, seed: 3), epoch: 0, id: 4, image: image) == image.map(Float.init))
    }
}

@Suite struct PNGWriterTests {
    @Test func writesAValidGreyPNG() throws {
        var image = Image8(width: 3, height: 2)
        image.pixels = [0, 128, 255, 10, 20, 30]
        let png = try image.pngData()
        #expect(Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(Array(png[12..<16]) == Array("IHDR".utf8))
        #expect(Array(png[16..<24]) == [0, 0, 0, 3, 0, 0, 0, 2])
        // The IDAT payload inflates to the filtered rows.
        let idatLength = Int(png[33]) << 24 | Int(png[34]) << 16 | Int(png[35]) << 8 | Int(png[36])
        #expect(Array(png[37..<41]) == Array("IDAT".utf8))
        var compressed = Array(png[41..<(41 + idatLength)])
        var out = [UInt8](repeating: 0, count: 64)
        var outLength = uLong(out.count)
        let status = uncompress(&out, &outLength, &compressed, uLong(compressed.count))
        #expect(status == Z_OK)
        #expect(Array(out[0..<Int(outLength)]) == [0, 0, 128, 255, 0, 10, 20, 30])
    }
}
