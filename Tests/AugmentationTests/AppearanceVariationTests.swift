import Augmentation
import Testing

/// `--augment thickness=p,blur=p,lowres=p,contrast=p,noise=p`: parsing, and draws that depend only
/// on (seed, epoch, sample id).
@Suite struct AppearanceVariationTests {
    /// A digit-like 28x28 image: a ring of ink 3 px wide with soft edges.
    let digit: [UInt8] = (0..<784).map { i in
        let dx = Double(i % 28) - 13.5, dy = Double(i / 28) - 13.5
        let r = (dx * dx + dy * dy).squareRoot()
        return UInt8(max(0, min(255, 255 * (2 - abs(r - 7)))))
    }

    func draw(_ augmenter: Augmenter, epoch: Int, id: Int) -> [Float] {
        var out = [Float](repeating: 0, count: 784), scratch = [Float](repeating: 0, count: 3 * 784)
        digit.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in scratch.withUnsafeMutableBufferPointer { s in
            augmenter.augment(i.baseAddress!, epoch: epoch, sampleID: id, into: o.baseAddress!, scratch: s.baseAddress!)
        } } }
        return out
    }

    @Test func parsingTakesProbabilitiesAndRoundTrips() throws {
        let s = try AugmentationSettings(parsing: "thickness=0.3,blur=0.2,lowres=0.25,contrast=0.4,noise=0.5")
        #expect(s.thickness == 0.3 && s.blur == 0.2 && s.lowResolution == 0.25 && s.contrast == 0.4 && s.noise == 0.5)
        // Unnamed keys keep their defaults: the default warp is still there.
        #expect(s.rotationDegrees == 10 && s.shift == 2 && s.variesAppearance && !s.isIdentity)
        #expect(try AugmentationSettings(parsing: s.description) == s)
        #expect(s.description == "rotation=10.0,scale=0.1,shift=2.0,thickness=0.3,blur=0.2,lowres=0.25,contrast=0.4,noise=0.5")
        // "none" first: no warp, only the named variation.
        let alone = try AugmentationSettings(parsing: "none,noise=0.5")
        #expect(alone.rotationDegrees == 0 && alone.scale == 0 && alone.shift == 0 && alone.noise == 0.5 && !alone.isIdentity)
        #expect(try AugmentationSettings(parsing: alone.description) == alone)
        #expect(try AugmentationSettings(parsing: "default,blur=0.1") == (try AugmentationSettings(parsing: "blur=0.1")))
        // Settings without the new keys describe themselves as before (resumed runs compare these).
        #expect(try AugmentationSettings(parsing: "default").description == "rotation=10.0,scale=0.1,shift=2.0")
        #expect(try AugmentationSettings(parsing: "none").description == "none")
    }

    @Test func badValuesSaySo() {
        func message(_ text: String) -> String? {
            do { _ = try AugmentationSettings(parsing: text); return nil } catch { return "\(error)" }
        }
        #expect(message("noise=1.5") == "noise=1.5 in --augment 'noise=1.5' is a probability; it must be at most 1")
        #expect(message("blur=-0.1")?.contains("is not key=value with a number ≥ 0") == true)
        #expect(message("thicknes=0.2")?.contains("known: rotation, scale, xyscale, shift, shear, thickness, blur, lowres, contrast, noise") == true)
        #expect(message("thickness=0.2,none") != nil)
    }

    @Test func aDrawDependsOnlyOnSeedEpochAndSampleID() throws {
        var settings = try AugmentationSettings(parsing: "thickness=1,blur=1,lowres=1,contrast=1,noise=1")
        settings.elastic = (alpha: 8, sigma: 3)
        // Two augmenters as two ranks would build them; draws asked for in different orders.
        let a = Augmenter(settings: settings, seed: 11), b = Augmenter(settings: settings, seed: 11)
        let first = draw(a, epoch: 3, id: 4711)
        _ = draw(b, epoch: 0, id: 1)
        _ = draw(b, epoch: 3, id: 4712)
        #expect(draw(b, epoch: 3, id: 4711) == first)
        #expect(draw(a, epoch: 4, id: 4711) != first)
        #expect(draw(a, epoch: 3, id: 4710) != first)
        #expect(draw(Augmenter(settings: settings, seed: 12), epoch: 3, id: 4711) != first)
        #expect(first.allSatisfy { $0 >= 0 && $0 <= 255 })
    }

    @Test func theWarpIsTheSameWithOrWithoutTheVariations() throws {
        // The variations draw from their own stream: adding them leaves each sample's warp as it was.
        let plain = Augmenter(settings: try AugmentationSettings(parsing: "default"), seed: 5)
        let varied = Augmenter(settings: try AugmentationSettings(parsing: "default,thickness=1,noise=1"), seed: 5)
        for id in [0, 17, 59_999] { #expect(plain.transform(epoch: 2, sampleID: id) == varied.transform(epoch: 2, sampleID: id)) }
        // A probability of 0 is no variation at all.
        let zero = Augmenter(settings: try AugmentationSettings(parsing: "default,thickness=0,noise=0"), seed: 5)
        #expect(draw(zero, epoch: 2, id: 17) == draw(plain, epoch: 2, id: 17))
    }

    @Test(arguments: ["thickness", "blur", "lowres", "contrast", "noise"])
    func eachVariationHappensAboutAsOftenAsAsked(key: String) throws {
        let none = Augmenter(settings: .none, seed: 3)
        let half = Augmenter(settings: try AugmentationSettings(parsing: "none,\(key)=0.5"), seed: 3)
        let always = Augmenter(settings: try AugmentationSettings(parsing: "none,\(key)=1"), seed: 3)
        let original = draw(none, epoch: 0, id: 0)
        #expect(original == digit.map(Float.init))
        var changed = 0
        for id in 0..<400 {
            if draw(half, epoch: 1, id: id) != original { changed += 1 }
            #expect(draw(always, epoch: 1, id: id) != original, "\(key)=1 left sample \(id) as it was")
        }
        // Binomial(400, 0.5): 200 ± 10 standard deviation.
        #expect(abs(changed - 200) < 40, "\(key)=0.5 changed \(changed) of 400")
    }

    @Test func thicknessDilatesOrErodesAndContrastStaysInRange() throws {
        let always = Augmenter(settings: try AugmentationSettings(parsing: "none,thickness=1"), seed: 9)
        let mass = digit.reduce(Float(0)) { $0 + Float($1) }
        var thicker = 0, thinner = 0
        for id in 0..<100 {
            let m = draw(always, epoch: 0, id: id).reduce(0, +)
            if m > mass * 1.05 { thicker += 1 } else if m < mass * 0.95 { thinner += 1 }
        }
        #expect(thicker > 30 && thinner > 30 && thicker + thinner == 100, "thicker \(thicker), thinner \(thinner)")
        let contrast = Augmenter(settings: try AugmentationSettings(parsing: "none,contrast=1"), seed: 9)
        for id in 0..<100 {
            let out = draw(contrast, epoch: 0, id: id)
            let paper = out[0], ink = out.max() ?? 0
            #expect(paper >= 0 && paper <= 110 && ink <= 255 && ink - paper >= 0.24 * (255 - paper), "id \(id): paper \(paper), ink \(ink)")
        }
    }
}
