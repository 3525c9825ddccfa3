import Augmentation
import Testing

/// The robustness perturbations and the filters under them, on small hand-made images whose
/// results can be worked out by hand.
@Suite struct PerturbationTests {
    /// A w x h image of zeros with the given pixels set.
    func image(_ w: Int, _ h: Int, _ pixels: [(x: Int, y: Int, v: UInt8)]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: w * h)
        for p in pixels { out[p.y * w + p.x] = p.v }
        return out
    }

    /// The (x, y) of every non-zero pixel.
    func inked(_ image: [UInt8], width: Int) -> [[Int]] {
        image.indices.filter { image[$0] != 0 }.map { [$0 % width, $0 / width] }
    }

    @Test func clean_isTheImage() {
        let input: [UInt8] = (0..<(28 * 28)).map { UInt8(($0 * 29) % 256) }
        #expect(Perturbation.clean.applied(to: input, width: 28, height: 28, imageID: 3) == input)
    }

    @Test func thick_dilatesOnePixelIntoA3x3Block() {
        let out = Perturbation.thick.applied(to: image(7, 7, [(3, 3, 200)]), width: 7, height: 7, imageID: 0)
        let expected = image(7, 7, (2...4).flatMap { y in (2...4).map { x in (x, y, UInt8(200)) } })
        #expect(out == expected)
        // At a corner the neighbourhood is cut off: a 2x2 block.
        let corner = Perturbation.thick.applied(to: image(5, 5, [(0, 0, 90)]), width: 5, height: 5, imageID: 0)
        #expect(inked(corner, width: 5) == [[0, 0], [1, 0], [0, 1], [1, 1]])
        // The brightest neighbour wins.
        let two = Perturbation.thick.applied(to: image(5, 1, [(1, 0, 50), (3, 0, 120)]), width: 5, height: 1, imageID: 0)
        #expect(two == [50, 50, 120, 120, 120])
    }

    @Test func thin_erodesAPixelAwayAndA5x5BlockTo3x3() {
        #expect(Perturbation.thin.applied(to: image(7, 7, [(3, 3, 255)]), width: 7, height: 7, imageID: 0) == image(7, 7, []))
        let block = image(9, 9, (2...6).flatMap { y in (2...6).map { x in (x, y, UInt8(180)) } })
        let out = Perturbation.thin.applied(to: block, width: 9, height: 9, imageID: 0)
        #expect(out == image(9, 9, (3...5).flatMap { y in (3...5).map { x in (x, y, UInt8(180)) } }))
    }

    @Test(arguments: [Perturbation.lowres16, .lowres12, .lowres8])
    func lowResolution_keepsAConstantImageConstant(perturbation: Perturbation) {
        let constant = [UInt8](repeating: 137, count: 28 * 28)
        #expect(perturbation.applied(to: constant, width: 28, height: 28, imageID: 1) == constant)
    }

    @Test func lowResolution_averagesAreasAndInterpolatesBack() {
        // 4x4 halved: each 2x2 block's mean, then bilinear between the small pixels' centres.
        let input: [Float] = [0, 0, 4, 4,
                              0, 0, 4, 4,
                              8, 8, 12, 12,
                              8, 8, 12, 12]
        var out = [Float](repeating: -1, count: 16), temp = [Float](repeating: 0, count: 16)
        input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in temp.withUnsafeMutableBufferPointer { t in
            ImageFilter.lowResolution(i.baseAddress!, width: 4, height: 4, smallWidth: 2, smallHeight: 2, into: o.baseAddress!, temp: t.baseAddress!)
        } } }
        #expect(out == [0, 1, 3, 4,
                        2, 3, 5, 6,
                        6, 7, 9, 10,
                        8, 9, 11, 12])
        // 28 to 8 is not a whole number of pixels: the mean over the image is still kept.
        let stripes: [UInt8] = (0..<(28 * 28)).map { ($0 % 28) < 10 ? 255 : 0 }
        let low = Perturbation.lowres8.applied(to: stripes, width: 28, height: 28, imageID: 0)
        let before = stripes.reduce(0) { $0 + Int($1) }, after = low.reduce(0) { $0 + Int($1) }
        #expect(abs(Double(after) / Double(before) - 1) < 0.03, "mass \(before) -> \(after)")
        #expect(low != stripes)
    }

    @Test func inverted_isTwoFiftyFiveMinus() {
        let input: [UInt8] = (0..<64).map { UInt8($0 * 4) }
        #expect(Perturbation.inverted.applied(to: input, width: 8, height: 8, imageID: 0) == input.map { 255 - $0 })
    }

    @Test func shift_movesEveryPixelFivePixelsOneWay() {
        let input = image(28, 28, [(12, 13, 255), (13, 13, 100)])
        var directions = Set<[Int]>()
        for id in 0..<40 {
            let out = Perturbation.shift.applied(to: input, width: 28, height: 28, imageID: id)
            let moved = inked(out, width: 28)
            #expect(moved.count == 2)
            let dx = moved[0][0] - 12, dy = moved[0][1] - 13
            #expect(abs(dx) + abs(dy) == 5 && dx * dy == 0, "id \(id): moved by (\(dx), \(dy))")
            #expect(out[(13 + dy) * 28 + 12 + dx] == 255 && out[(13 + dy) * 28 + 13 + dx] == 100)
            directions.insert([dx, dy])
            // Deterministic per image id.
            #expect(Perturbation.shift.applied(to: input, width: 28, height: 28, imageID: id) == out)
        }
        #expect(directions.count == 4, "directions drawn: \(directions)")
        // What leaves the image is gone; what comes in is background.
        let edge = Perturbation.shift.applied(to: image(28, 28, [(0, 0, 255), (27, 0, 255), (0, 27, 255), (27, 27, 255)]),
                                              width: 28, height: 28, imageID: 0)
        #expect(inked(edge, width: 28).count == 2)
    }

    @Test func contrast_mapsPaperAndInkToTheirLevels() {
        let input: [UInt8] = [0, 255, 128]
        #expect(Perturbation.faint.applied(to: input, width: 3, height: 1, imageID: 0) == [0, 77, 38])
        #expect(Perturbation.greyPaper.applied(to: input, width: 3, height: 1, imageID: 0) == [100, 220, 160])
    }

    @Test func noise_isSeededPerImageAndHasItsSigma() {
        let grey = [UInt8](repeating: 128, count: 28 * 28)
        let a = Perturbation.noise.applied(to: grey, width: 28, height: 28, imageID: 17)
        #expect(Perturbation.noise.applied(to: grey, width: 28, height: 28, imageID: 17) == a)
        #expect(Perturbation.noise.applied(to: grey, width: 28, height: 28, imageID: 18) != a)
        let values = a.map(Double.init), mean = values.reduce(0, +) / Double(values.count)
        let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        #expect(abs(mean - 128) < 4 && abs(sd - Double(Perturbation.noiseSigma)) < 4, "mean \(mean), sd \(sd)")
    }

    @Test func blur_spreadsAPixelSymmetricallyAndKeepsItsMass() {
        var input = [Float](repeating: 0, count: 15 * 15)
        input[7 * 15 + 7] = 255
        var out = [Float](repeating: 0, count: 225), temp = [Float](repeating: 0, count: 225)
        input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in temp.withUnsafeMutableBufferPointer { t in
            ImageFilter.blur(i.baseAddress!, width: 15, height: 15, sigma: 1, into: o.baseAddress!, temp: t.baseAddress!)
        } } }
        #expect(abs(out.reduce(0, +) - 255) < 1e-3)
        // The 1-D kernel at 0 and 1 for sigma 1, cut at 3: e^0 / Σ and e^-1/2 / Σ.
        let sum = (-3...3).reduce(Float(0)) { $0 + expf(-Float($1 * $1) / 2) }
        #expect(abs(out[7 * 15 + 7] - 255 / (sum * sum)) < 1e-3)
        #expect(abs(out[7 * 15 + 8] - 255 * expf(-0.5) / (sum * sum)) < 1e-3)
        #expect(out[7 * 15 + 6] == out[7 * 15 + 8] && out[6 * 15 + 7] == out[8 * 15 + 7] && abs(out[6 * 15 + 7] - out[7 * 15 + 8]) < 1e-4)
        #expect(out[7 * 15 + 11] == 0)
    }

    @Test func rotation_turnsABarByTwentyFiveDegreesEitherWay() {
        var bar = [UInt8](repeating: 0, count: 28 * 28)
        for y in 13...14 { for x in 4...23 { bar[y * 28 + x] = 255 } }
        var senses = Set<Int>()
        for id in 0..<12 {
            let out = Perturbation.rotation.applied(to: bar, width: 28, height: 28, imageID: id)
            // The bar's direction from its second moments.
            var m = 0.0, cx = 0.0, cy = 0.0
            for i in 0..<784 { let v = Double(out[i]); m += v; cx += v * Double(i % 28); cy += v * Double(i / 28) }
            cx /= m; cy /= m
            var sxx = 0.0, syy = 0.0, sxy = 0.0
            for i in 0..<784 {
                let v = Double(out[i]), dx = Double(i % 28) - cx, dy = Double(i / 28) - cy
                sxx += v * dx * dx; syy += v * dy * dy; sxy += v * dx * dy
            }
            let degrees = 0.5 * atan2(2 * sxy, sxx - syy) * 180 / Double.pi
            #expect(abs(abs(degrees) - 25) < 1.5, "id \(id): \(degrees)°")
            #expect(abs(cx - 13.5) < 0.2 && abs(cy - 13.5) < 0.2)
            senses.insert(degrees > 0 ? 1 : -1)
        }
        #expect(senses.count == 2)
    }

    @Test func everyPerturbationIsDeterministicAndNamedOnce() {
        let digit: [UInt8] = (0..<(28 * 28)).map { i in (i % 28 > 8 && i % 28 < 19 && i / 28 > 5 && i / 28 < 23) ? 230 : 0 }
        for p in Perturbation.allCases {
            #expect(p.applied(to: digit, width: 28, height: 28, imageID: 5) == p.applied(to: digit, width: 28, height: 28, imageID: 5))
            #expect(!p.summary.isEmpty)
            if p != .clean { #expect(p.applied(to: digit, width: 28, height: 28, imageID: 5) != digit, "\(p) changed nothing") }
        }
        #expect(Set(Perturbation.allCases.map(\.rawValue)).count == Perturbation.allCases.count)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
