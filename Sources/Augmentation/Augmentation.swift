import CounterRNG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ranges random augmentation draws from. Every sample gets its own draw, keyed by
/// (seed, epoch, global sample id), so a sample looks the same whichever rank holds it.
public struct AugmentationSettings: Equatable, Sendable, CustomStringConvertible {
    /// Rotation uniformly in ±degrees.
    public var rotationDegrees: Float = 10
    /// Scale factor uniformly in 1±scale (the same on both axes unless `independentScale`).
    public var scale: Float = 0.1
    public var independentScale = false
    /// Translation uniformly in ±pixels, independently in x and y.
    public var shift: Float = 2
    /// Shear angle uniformly in ±degrees (x shear).
    public var shearDegrees: Float = 0
    /// Elastic distortion (Simard et al. 2003): a uniform random displacement field smoothed by
    /// a Gaussian of width `sigma`, scaled by `alpha`. nil: none.
    public var elastic: (alpha: Float, sigma: Float)?

    /// Probabilities (0...1) of the variations of a user's pen, paper and camera, each decided
    /// anew per sample after the warp (`Augmenter.varyAppearance`, where the ranges are stated):
    /// strokes thickened or thinned, blurred, captured at low resolution, at low contrast, noisy.
    public var thickness: Float = 0
    public var blur: Float = 0
    public var lowResolution: Float = 0
    public var contrast: Float = 0
    public var noise: Float = 0

    /// True when any of the photometric and morphological variations can happen.
    public var variesAppearance: Bool { thickness > 0 || blur > 0 || lowResolution > 0 || contrast > 0 || noise > 0 }

    public init() {}

    public static let none: AugmentationSettings = {
        var s = AugmentationSettings()
        s.rotationDegrees = 0; s.scale = 0; s.shift = 0; s.shearDegrees = 0; s.elastic = nil
        return s
    }()

    public var isIdentity: Bool {
        rotationDegrees == 0 && scale == 0 && shift == 0 && shearDegrees == 0 && elastic == nil && !variesAppearance
    }

    public static func == (a: AugmentationSettings, b: AugmentationSettings) -> Bool { a.description == b.description }

    /// "rotation=10,scale=0.1,shift=2" (plus shear, xyscale, elastic, thickness, blur, lowres,
    /// contrast, noise when set), or "none".
    public var description: String {
        if isIdentity { return "none" }
        var parts = ["rotation=\(rotationDegrees)", "scale=\(scale)", "shift=\(shift)"]
        if independentScale { parts.append("xyscale=1") }
        if shearDegrees != 0 { parts.append("shear=\(shearDegrees)") }
        if let e = elastic { parts.append("elastic=\(e.alpha)/\(e.sigma)") }
        for (key, p) in [("thickness", thickness), ("blur", blur), ("lowres", lowResolution), ("contrast", contrast), ("noise", noise)] where p > 0 {
            parts.append("\(key)=\(p)")
        }
        return parts.joined(separator: ",")
    }

    /// The keys of `--augment`, for messages.
    public static let keys = "rotation, scale, xyscale, shift, shear, thickness, blur, lowres, contrast, noise"

    /// Parses the `--augment` form: "none", "default", or comma-separated key=value pairs with keys
    /// rotation (degrees), scale (fraction), xyscale (0/1), shift (pixels), shear (degrees), and the
    /// probabilities thickness, blur, lowres, contrast, noise (0 to 1); unnamed keys keep their
    /// defaults. "default" or "none" may also open the list: "none,noise=0.3" is noise alone.
    public init(parsing text: String) throws {
        self.init()
        let trimmed = text.trimmingSpaces
        if trimmed == "none" { self = .none; return }
        if trimmed == "default" || trimmed.isEmpty { return }
        for (position, pair) in trimmed.split(separator: ",").enumerated() {
            let item = String(pair).trimmingSpaces
            if position == 0 && (item == "none" || item == "default") {
                if item == "none" { self = .none }
                continue
            }
            let kv = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces }
            guard kv.count == 2, let value = Float(kv[1]), value.isFinite, value >= 0 else {
                throw AugmentationError("'\(pair)' in --augment '\(text)' is not key=value with a number ≥ 0")
            }
            func probability() throws -> Float {
                guard value <= 1 else {
                    throw AugmentationError("\(kv[0])=\(kv[1]) in --augment '\(text)' is a probability; it must be at most 1")
                }
                return value
            }
            switch kv[0] {
            case "rotation": rotationDegrees = value
            case "scale":
                guard value < 1 else { throw AugmentationError("scale=\(value) in --augment must be below 1") }
                scale = value
            case "xyscale": independentScale = value != 0
            case "shift": shift = value
            case "shear": shearDegrees = value
            case "thickness": thickness = try probability()
            case "blur": blur = try probability()
            case "lowres": lowResolution = try probability()
            case "contrast": contrast = try probability()
            case "noise": noise = try probability()
            default:
                throw AugmentationError("unknown key '\(kv[0])' in --augment '\(text)' (known: \(AugmentationSettings.keys))")
            }
        }
    }

    /// Parses `--elastic alpha,sigma`.
    public static func parseElastic(_ text: String) throws -> (alpha: Float, sigma: Float) {
        let parts = text.split(separator: ",").map { Float(String($0).trimmingSpaces) }
        guard parts.count == 2, let alpha = parts[0], let sigma = parts[1], alpha >= 0, alpha.isFinite, sigma > 0, sigma <= 10 else {
            throw AugmentationError("--elastic '\(text)' must be alpha,sigma with alpha ≥ 0 and 0 < sigma ≤ 10 (Simard et al. used 34,4)")
        }
        return (alpha, sigma)
    }
}

public struct AugmentationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A 2-D affine map p' = M p + t, in pixel coordinates (x right, y down).
public struct Affine: Equatable, Sendable {
    public var a, b, c, d: Float   // M = [[a, b], [c, d]]
    public var tx, ty: Float

    public static let identity = Affine(a: 1, b: 0, c: 0, d: 1, tx: 0, ty: 0)

    public init(a: Float, b: Float, c: Float, d: Float, tx: Float, ty: Float) {
        self.a = a; self.b = b; self.c = c; self.d = d; self.tx = tx; self.ty = ty
    }

    /// The forward map of an image of width × height: scale, shear, rotate about the centre, then shift.
    public init(rotationDegrees: Float, scaleX: Float, scaleY: Float, shearDegrees: Float, shiftX: Float, shiftY: Float,
                width: Int, height: Int) {
        let theta = rotationDegrees * Float.pi / 180
        let cosT = cosf(theta), sinT = sinf(theta)
        let k = tanf(shearDegrees * Float.pi / 180)
        // M = R · Shear · S
        let m00 = scaleX, m01 = k * scaleY, m10: Float = 0, m11 = scaleY
        a = cosT * m00 - sinT * m10; b = cosT * m01 - sinT * m11
        c = sinT * m00 + cosT * m10; d = sinT * m01 + cosT * m11
        let cx = Float(width - 1) / 2, cy = Float(height - 1) / 2
        tx = cx + shiftX - (a * cx + b * cy)
        ty = cy + shiftY - (c * cx + d * cy)
    }

    public var inverse: Affine {
        let det = a * d - b * c
        let ia = d / det, ib = -b / det, ic = -c / det, id = a / det
        return Affine(a: ia, b: ib, c: ic, d: id, tx: -(ia * tx + ib * ty), ty: -(ic * tx + id * ty))
    }

    @inline(__always)
    func apply(_ x: Float, _ y: Float) -> (Float, Float) { (a * x + b * y + tx, c * x + d * y + ty) }
}

/// Random affine warps (and optional elastic distortion) of single-channel images.
public struct Augmenter: Sendable {
    public let settings: AugmentationSettings
    public let width: Int
    public let height: Int
    public let seed: UInt64
    let gaussian: [Float]   // normalised 1-D kernel for the elastic field

    public init(settings: AugmentationSettings, width: Int = 28, height: Int = 28, seed: UInt64) {
        self.settings = settings
        self.width = width
        self.height = height
        self.seed = seed
        if let e = settings.elastic {
            let radius = Int((3 * e.sigma).rounded(.up))
            // 2·sigma² underflows to 0 for a sigma below about 1e-19 (the parser takes any positive one):
            // the kernel is then its limit, a single 1 (no smoothing), not 0/0 = NaN in every weight.
            let twoSigmaSquared = max(2 * e.sigma * e.sigma, Float.leastNormalMagnitude)
            var k = (-radius...radius).map { expf(-Float($0 * $0) / twoSigmaSquared) }
            let sum = k.reduce(0, +)
            for i in 0..<k.count { k[i] /= sum }
            gaussian = k
        } else {
            gaussian = []
        }
    }

    /// The affine map drawn for one sample in one epoch.
    public func transform(epoch: Int, sampleID: Int) -> Affine {
        var random = KeyedRandom(seed: seed, purpose: .augmentation, UInt64(epoch), UInt64(sampleID))
        let s = settings
        let rotation = random.nextUniform(-1, 1) * s.rotationDegrees
        let sx = 1 + random.nextUniform(-1, 1) * s.scale
        let syDraw = 1 + random.nextUniform(-1, 1) * s.scale
        let sy = s.independentScale ? syDraw : sx
        let shear = random.nextUniform(-1, 1) * s.shearDegrees
        let dx = random.nextUniform(-1, 1) * s.shift
        let dy = random.nextUniform(-1, 1) * s.shift
        return Affine(rotationDegrees: rotation, scaleX: sx, scaleY: sy, shearDegrees: shear, shiftX: dx, shiftY: dy,
                      width: width, height: height)
    }

    /// Writes one augmented sample (pixel values as Float, same scale as the input bytes) into
    /// `output`. `scratch` needs 3·width·height floats when elastic distortion is on, 2·width·height
    /// when the appearance varies.
    public func augment(_ image: UnsafePointer<UInt8>, epoch: Int, sampleID: Int, into output: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>) {
        let inverse = transform(epoch: epoch, sampleID: sampleID).inverse
        if let e = settings.elastic {
            let fieldX = scratch, fieldY = scratch + width * height, temp = scratch + 2 * width * height
            var random = KeyedRandom(seed: seed, purpose: .elastic, UInt64(epoch), UInt64(sampleID))
            for i in 0..<(width * height) { fieldX[i] = random.nextUniform(-1, 1); fieldY[i] = random.nextUniform(-1, 1) }
            smooth(fieldX, temp: temp)
            smooth(fieldY, temp: temp)
            for y in 0..<height {
                for x in 0..<width {
                    let i = y * width + x
                    let (sx, sy) = inverse.apply(Float(x) + e.alpha * fieldX[i], Float(y) + e.alpha * fieldY[i])
                    output[i] = sample(image, sx, sy)
                }
            }
        } else {
            for y in 0..<height {
                for x in 0..<width {
                    let (sx, sy) = inverse.apply(Float(x), Float(y))
                    output[y * width + x] = sample(image, sx, sy)
                }
            }
        }
        // After the warp the scratch is free again (the elastic fields are spent).
        if settings.variesAppearance { varyAppearance(output, epoch: epoch, sampleID: sampleID, scratch: scratch) }
    }

    /// Applies an explicit map (for tests and previews).
    public func warp(_ image: UnsafePointer<UInt8>, with forward: Affine, into output: UnsafeMutablePointer<Float>) {
        let inverse = forward.inverse
        for y in 0..<height {
            for x in 0..<width {
                let (sx, sy) = inverse.apply(Float(x), Float(y))
                output[y * width + x] = sample(image, sx, sy)
            }
        }
    }

    /// Bilinear interpolation with zeros outside the image.
    @inline(__always)
    func sample(_ image: UnsafePointer<UInt8>, _ x: Float, _ y: Float) -> Float {
        let fx = floorf(x), fy = floorf(y)
        // Compared as floats first: a huge shift or elastic amplitude (or a NaN) lands far outside
        // the image, where converting to Int would trap; it reads as background.
        guard fx >= -1, fy >= -1, fx < Float(width), fy < Float(height) else { return 0 }
        let x0 = Int(fx), y0 = Int(fy)
        let wx = x - fx, wy = y - fy
        @inline(__always) func pixel(_ px: Int, _ py: Int) -> Float {
            (px < 0 || py < 0 || px >= width || py >= height) ? 0 : Float(image[py * width + px])
        }
        let top = pixel(x0, y0) * (1 - wx) + pixel(x0 + 1, y0) * wx
        let bottom = pixel(x0, y0 + 1) * (1 - wx) + pixel(x0 + 1, y0 + 1) * wx
        return top * (1 - wy) + bottom * wy
    }

    /// Separable Gaussian blur of one field in place (zero beyond the borders).
    func smooth(_ field: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>) {
        let radius = gaussian.count / 2
        gaussian.withUnsafeBufferPointer { k in
            for y in 0..<height {
                for x in 0..<width {
                    var sum: Float = 0
                    for j in -radius...radius where x + j >= 0 && x + j < width { sum += k[j + radius] * field[y * width + x + j] }
                    temp[y * width + x] = sum
                }
            }
            for y in 0..<height {
                for x in 0..<width {
                    var sum: Float = 0
                    for j in -radius...radius where y + j >= 0 && y + j < height { sum += k[j + radius] * temp[(y + j) * width + x] }
                    field[y * width + x] = sum
                }
            }
        }
    }
}
