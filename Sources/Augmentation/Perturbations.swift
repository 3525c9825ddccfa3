import CounterRNG

/// A change a user's photo or scan of a digit may have and MNIST's test images do not, for
/// `digits evaluate --robustness`. Each acts on one (height, width) grey image of bytes, light ink
/// on black as MNIST's, and is deterministic: its random parts (the noise, a shift's direction, a
/// rotation's sense) are drawn from a fixed key and the image's id.
///
/// The strengths lie beyond what `--augment default` trains on (shift ±2 px, rotation ±10°), and
/// where an image of another size is perturbed, pixel sizes scale with it (a 28-pixel field is the unit).
public enum Perturbation: String, CaseIterable, Sendable {
    case clean
    case thick
    case thin
    case blur
    case faint
    case greyPaper = "grey-paper"
    case noise
    case lowres16 = "lowres-16"
    case lowres12 = "lowres-12"
    case lowres8 = "lowres-8"
    case shift
    case rotation
    case inverted

    /// Gaussian noise, grey levels (of 255).
    public static let noiseSigma: Float = 40
    /// Faint ink: full ink becomes this fraction of white.
    public static let faintInk: Float = 0.3
    /// Grey paper: the background and full ink become these levels.
    public static let greyPaperLevels: (paper: Float, ink: Float) = (100, 220)
    /// Blur width, pixels.
    public static let blurSigma: Float = 1
    /// Shift, pixels (of a 28-pixel field).
    public static let shiftPixels = 5
    /// Rotation, degrees.
    public static let rotationDegrees: Float = 25

    /// One line saying what the perturbation does, for tables and `--help`.
    public var summary: String {
        switch self {
        case .clean: return "the test image as it is"
        case .thick: return "thicker strokes: grey dilation, 3x3"
        case .thin: return "thinner strokes: grey erosion, 3x3"
        case .blur: return "Gaussian blur, sigma \(Perturbation.blurSigma) px"
        case .faint: return "faint ink: \(Int(100 * Perturbation.faintInk))% of full on black"
        case .greyPaper: return "low contrast: paper at \(Int(Perturbation.greyPaperLevels.paper)), ink at \(Int(Perturbation.greyPaperLevels.ink)) (of 255)"
        case .noise: return "additive Gaussian noise, sigma \(Int(Perturbation.noiseSigma)) grey levels, clipped"
        case .lowres16, .lowres12, .lowres8: return "captured at \(lowResolution ?? 0)x\(lowResolution ?? 0) px (area average), enlarged back (bilinear)"
        case .shift: return "off centre: shifted \(Perturbation.shiftPixels) px left, right, up or down"
        case .rotation: return "rotated \(Int(Perturbation.rotationDegrees))°, either way"
        case .inverted: return "dark ink on light paper (an ordinary scan)"
        }
    }

    /// The small side of a low-resolution capture (of a 28-pixel field), or nil.
    public var lowResolution: Int? {
        switch self {
        case .lowres16: return 16
        case .lowres12: return 12
        case .lowres8: return 8
        default: return nil
        }
    }

    /// False when the image cannot go straight into a network trained on MNIST's bytes and mean
    /// anything: an inverted image only makes sense through predict's preprocessing, which decides
    /// the polarity from the border.
    public var meaningfulAsRawInput: Bool { self != .inverted }

    /// The perturbation's own key for its draws: FNV-1a of its name, so that adding a perturbation
    /// leaves the others' draws as they were.
    var key: UInt64 {
        rawValue.utf8.reduce(0xCBF2_9CE4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x0000_0100_0000_01B3 }
    }

    /// Writes the perturbed `image` into `output` (both width·height bytes). `scratch` needs
    /// 3·width·height floats. A pure function of (the perturbation, the image, imageID).
    public func apply(_ image: UnsafePointer<UInt8>, width w: Int, height h: Int, imageID: Int,
                      into output: UnsafeMutablePointer<UInt8>, scratch: UnsafeMutablePointer<Float>) {
        let n = w * h
        let source = scratch, result = scratch + n, temp = scratch + 2 * n
        for i in 0..<n { source[i] = Float(image[i]) }
        var random = KeyedRandom(seed: 0x524F_4255_5354, purpose: .robustness, key, UInt64(max(0, imageID)))
        // A length in pixels of a 28-pixel field, for this image's size.
        let unit = Float(min(w, h)) / 28
        switch self {
        case .clean: result.update(from: source, count: n)
        case .thick: ImageFilter.dilate(source, width: w, height: h, into: result, temp: temp)
        case .thin: ImageFilter.erode(source, width: w, height: h, into: result, temp: temp)
        case .blur: ImageFilter.blur(source, width: w, height: h, sigma: Perturbation.blurSigma * unit, into: result, temp: temp)
        case .faint:
            result.update(from: source, count: n)
            ImageFilter.remapContrast(result, count: n, paper: 0, ink: 255 * Perturbation.faintInk)
        case .greyPaper:
            result.update(from: source, count: n)
            ImageFilter.remapContrast(result, count: n, paper: Perturbation.greyPaperLevels.paper, ink: Perturbation.greyPaperLevels.ink)
        case .noise:
            result.update(from: source, count: n)
            ImageFilter.addNoise(result, count: n, sigma: Perturbation.noiseSigma, random: &random)
        case .lowres16, .lowres12, .lowres8:
            let small = Float(lowResolution ?? 28) / 28
            ImageFilter.lowResolution(source, width: w, height: h,
                                      smallWidth: Int((Float(w) * small).rounded()), smallHeight: Int((Float(h) * small).rounded()),
                                      into: result, temp: temp)
        case .shift:
            let distance = Int((Float(Perturbation.shiftPixels) * unit).rounded())
            let (dx, dy) = [(distance, 0), (-distance, 0), (0, distance), (0, -distance)][random.nextIndex(below: 4)]
            Perturbation.translate(source, width: w, height: h, dx: dx, dy: dy, into: result)
        case .rotation:
            let degrees = random.nextIndex(below: 2) == 0 ? Perturbation.rotationDegrees : -Perturbation.rotationDegrees
            let map = Affine(rotationDegrees: degrees, scaleX: 1, scaleY: 1, shearDegrees: 0, shiftX: 0, shiftY: 0, width: w, height: h)
            Augmenter(settings: .none, width: w, height: h, seed: 0).warp(image, with: map, into: result)
        case .inverted:
            for i in 0..<n { result[i] = 255 - source[i] }
        }
        for i in 0..<n { output[i] = UInt8(min(255, max(0, result[i].rounded()))) }
    }

    /// The perturbed image as a new array (tests, previews).
    public func applied(to image: [UInt8], width: Int, height: Int, imageID: Int) -> [UInt8] {
        precondition(image.count == width * height, "an image of \(width)x\(height) has \(width * height) pixels")
        var output = [UInt8](repeating: 0, count: image.count)
        var scratch = [Float](repeating: 0, count: 3 * image.count)
        image.withUnsafeBufferPointer { i in output.withUnsafeMutableBufferPointer { o in scratch.withUnsafeMutableBufferPointer { s in
            apply(i.baseAddress!, width: width, height: height, imageID: imageID, into: o.baseAddress!, scratch: s.baseAddress!)
        } } }
        return output
    }

    /// out(x, y) = in(x − dx, y − dy); what comes in from outside is background (0).
    static func translate(_ input: UnsafePointer<Float>, width w: Int, height h: Int, dx: Int, dy: Int,
                          into output: UnsafeMutablePointer<Float>) {
        for y in 0..<h {
            for x in 0..<w {
                let sx = x - dx, sy = y - dy
                output[y * w + x] = (sx >= 0 && sy >= 0 && sx < w && sy < h) ? input[sy * w + sx] : 0
            }
        }
    }
}
