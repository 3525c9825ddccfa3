@testable import ImageIO
import Testing

/// What predict's preprocessing does with imperfect pictures: grain and noise on the paper, dust,
/// low contrast, strokes far thinner or thicker than MNIST's.
@Suite struct PreprocessRobustnessTests {
    /// Deterministic standard normal draws (SplitMix64 and Box–Muller), so the noisy pictures are fixed.
    struct Noise {
        var state: UInt64
        mutating func unit() -> Double {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
        }
        mutating func normal() -> Float {
            let u1 = max(unit(), 1e-300), u2 = unit()
            return Float((-2 * u1.logValue).squareRoot() * (2 * Double.pi * u2).cosineValue)
        }
    }

    /// `barPicture` (a 40x4 bar near the top-left of 200x100) with Gaussian noise of `sigma`, clipped to 0...1.
    func noisyBar(ink: Float, paper: Float, sigma: Float, seed: UInt64) -> GreyImage {
        var noise = Noise(state: seed)
        let values = barPicture(ink: ink, paper: paper).map { max(0, min(1, $0 + sigma * noise.normal())) }
        return GreyImage(width: 200, height: 100, values: values)
    }

    /// The bar must come out 20 px long, at most 3 thick, bright, centred, on black.
    func expectCentredBar(_ r: DigitPreprocessor.Result, _ label: String) {
        let ink = (0..<784).filter { r.pixels[$0] > 128 }
        let xs = ink.map { $0 % 28 }, ys = ink.map { $0 / 28 }
        #expect((xs.max() ?? 0) - (xs.min() ?? 0) + 1 == 20, "\(label): bar length \((xs.max() ?? 0) - (xs.min() ?? 0) + 1)")
        #expect((ys.max() ?? 0) - (ys.min() ?? 0) + 1 <= 3, "\(label): bar thickness \((ys.max() ?? 0) - (ys.min() ?? 0) + 1)")
        #expect((r.pixels.max() ?? 0) > 250, "\(label): ink not stretched to white")
        let mass = r.pixels.reduce(0, +)
        let cx = (0..<784).reduce(Float(0)) { $0 + Float($1 % 28) * r.pixels[$1] } / mass
        let cy = (0..<784).reduce(Float(0)) { $0 + Float($1 / 28) * r.pixels[$1] } / mass
        #expect(abs(cx - 14) <= 0.6 && abs(cy - 14) <= 0.6, "\(label): centre (\(cx), \(cy))")
        // Away from the bar (rows 3 or more from it) the field is nearly black.
        let far = (0..<784).filter { abs($0 / 28 - 14) >= 3 }
        let haze = far.reduce(Float(0)) { $0 + r.pixels[$1] } / Float(far.count)
        #expect(haze < 8, "\(label): background haze \(haze)")
    }

    @Test func noiseOnBlackPaperIsBelowTheFloor() throws {
        // Light ink on black with noise of sigma 0.15: before the noise floor and speck removal,
        // noise spikes stretched the ink box over the whole picture and shrank the bar to 4 px.
        let image = noisyBar(ink: 1, paper: 0, sigma: 0.15, seed: 1)
        let r = try DigitPreprocessor.prepare(image, path: "noisy")
        #expect(!r.inverted)
        expectCentredBar(r, "noise on black")
    }

    @Test func lowContrastNoisyScanOfDarkInk() throws {
        // Dark-grey ink (0.45) on light-grey paper (0.75), scanner noise 0.06: contrast 0.3.
        let image = noisyBar(ink: 0.45, paper: 0.75, sigma: 0.06, seed: 2)
        let r = try DigitPreprocessor.prepare(image, path: "scan")
        #expect(r.inverted)
        expectCentredBar(r, "low-contrast scan")
    }

    @Test func aSpeckOfDustDoesNotStretchTheBox() throws {
        var values = barPicture(ink: 0, paper: 1)
        values[90 * 200 + 190] = 0   // one dark pixel at the far corner
        values[90 * 200 + 191] = 0
        let r = try DigitPreprocessor.prepare(GreyImage(width: 200, height: 100, values: values), path: "dust")
        expectCentredBar(r, "dust")
    }

    @Test func theStrokesOfABrokenDigitStay() throws {
        // Two bars of a broken stroke, the smaller 10% of the larger: both stay, the box spans both.
        var values = [Float](repeating: 0, count: 100 * 100)
        for y in 20..<80 { for x in 30..<36 { values[y * 100 + x] = 1 } }   // 6 x 60
        for y in 20..<26 { for x in 60..<66 { values[y * 100 + x] = 1 } }   // 6 x 6, 36 px apart
        let r = try DigitPreprocessor.prepare(GreyImage(width: 100, height: 100, values: values), path: "broken")
        let ink = (0..<784).filter { r.pixels[$0] > 128 }
        let xs = ink.map { $0 % 28 }
        // The box is 36 wide and 60 tall: 12 px wide once 60 becomes 20.
        #expect((xs.max() ?? 0) - (xs.min() ?? 0) + 1 == 12)
    }

    @Test func cleanPaperIsUnchangedByTheNoiseFloor() throws {
        // No spread on the border: the floor is the paper, as it always was (the original tests in
        // PreprocessTests check the shapes); a mid-grey pixel of the ink keeps its level.
        var values = barPicture(ink: 1, paper: 0)
        values[12 * 200 + 30] = 0.5
        let ink = try DigitPreprocessor.normalizedInk(GreyImage(width: 200, height: 100, values: values), path: "clean").ink
        #expect(ink[12 * 200 + 30] == 0.5 && ink[12 * 200 + 31] == 1 && ink[0] == 0)
    }

    @Test func fineLinesAreThickenedTowardsMNISTsStrokes() throws {
        // A square outline drawn 1 px wide on a 120x120 picture: boxed into 20 px, a faint line 1 px wide.
        var values = [Float](repeating: 1, count: 120 * 120)
        for i in 10..<110 { values[10 * 120 + i] = 0; values[109 * 120 + i] = 0; values[i * 120 + 10] = 0; values[i * 120 + 109] = 0 }
        let r = try DigitPreprocessor.prepare(GreyImage(width: 120, height: 120, values: values), path: "fine pen")
        let width = DigitPreprocessor.strokeWidth(r.pixels, width: 28, height: 28)
        #expect(width >= DigitPreprocessor.mnistStrokeWidths.lowerBound, "stroke width \(width)")
        // The faint averaged line is full ink again.
        #expect((r.pixels.max() ?? 0) > 250)
        // Still the outline: the middle stays black.
        #expect(r.pixels[14 * 28 + 14] == 0)
    }

    @Test func strokeWidthMeasuresABar() {
        // A bar 4 wide and 20 long: ink 80, edges 19 + 20 + 3 + 4 + √2 (the corner at the bottom
        // right has both differences) = 47.41 -> 2·80/47.41 = 3.375.
        var pixels = [Float](repeating: 0, count: 784)
        for y in 12..<16 { for x in 4..<24 { pixels[y * 28 + x] = 255 } }
        let width = DigitPreprocessor.strokeWidth(pixels, width: 28, height: 28)
        #expect(abs(width - 3.375) < 0.005, "\(width)")
        // Within MNIST's range: left exactly as it is.
        #expect(DigitPreprocessor.normalizedStrokes(pixels, width: 28, height: 28) == pixels)
        // 9 wide: thinned.
        var thick = [Float](repeating: 0, count: 784)
        for y in 10..<19 { for x in 4..<24 { thick[y * 28 + x] = 255 } }
        let thinned = DigitPreprocessor.normalizedStrokes(thick, width: 28, height: 28)
        #expect(thinned.reduce(0, +) < thick.reduce(0, +) * 0.85)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Double {
    var logValue: Double { log(self) }
    var cosineValue: Double { cos(self) }
}
