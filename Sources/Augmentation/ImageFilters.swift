import CounterRNG
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The pixel filters that training augmentation (`PhotometricDraw`) and the robustness
/// perturbations (`Perturbation`) share, on one (height, width) grey image of Float values 0...255,
/// row-major, ink light on black. Each writes into `output`, never into its input, and allocates
/// nothing: the caller lends `temp` (width·height floats) where a filter has two passes.
///
/// At the image's edge a filter uses only the pixels inside (a 3x3 neighbourhood is cut off, a blur
/// repeats the edge pixel), so a constant image stays constant under every filter.
public enum ImageFilter {

    /// Grey dilation by a 3x3 square: each pixel becomes the brightest of its neighbourhood, so a
    /// stroke grows by one pixel on every side (a thicker pen). Separable: a row pass, then a column pass.
    public static func dilate(_ input: UnsafePointer<Float>, width: Int, height: Int,
                              into output: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>) {
        neighbourhoodExtreme(input, width: width, height: height, into: output, temp: temp, brightest: true)
    }

    /// Grey erosion by a 3x3 square: each pixel becomes the darkest of its neighbourhood, so a stroke
    /// loses one pixel on every side (a finer pen); strokes 2 pixels wide or less vanish.
    public static func erode(_ input: UnsafePointer<Float>, width: Int, height: Int,
                             into output: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>) {
        neighbourhoodExtreme(input, width: width, height: height, into: output, temp: temp, brightest: false)
    }

    static func neighbourhoodExtreme(_ input: UnsafePointer<Float>, width w: Int, height h: Int,
                                     into output: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>, brightest: Bool) {
        @inline(__always) func pick(_ a: Float, _ b: Float) -> Float { brightest ? max(a, b) : min(a, b) }
        for y in 0..<h {
            let row = input + y * w, out = temp + y * w
            for x in 0..<w {
                var v = row[x]
                if x > 0 { v = pick(v, row[x - 1]) }
                if x + 1 < w { v = pick(v, row[x + 1]) }
                out[x] = v
            }
        }
        for y in 0..<h {
            let out = output + y * w, mid = temp + y * w
            for x in 0..<w {
                var v = mid[x]
                if y > 0 { v = pick(v, mid[x - w]) }
                if y + 1 < h { v = pick(v, mid[x + w]) }
                out[x] = v
            }
        }
    }

    /// The largest Gaussian blur radius any caller needs (sigma up to 2 at three sigmas).
    public static let maximumBlurRadius = 6

    /// Gaussian blur of width `sigma` pixels (0 < sigma ≤ 2), separable, the kernel cut at
    /// 3·sigma and normalised to sum 1; beyond the edge the edge pixel repeats.
    public static func blur(_ input: UnsafePointer<Float>, width w: Int, height h: Int, sigma: Float,
                            into output: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>) {
        let radius = min(maximumBlurRadius, max(1, Int((3 * sigma).rounded(.up))))
        // The kernel on the stack: 2·6+1 taps at most.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * maximumBlurRadius + 1) { kernel in
            var sum: Float = 0
            let twoSigmaSquared = max(2 * sigma * sigma, 1e-6)
            for j in -radius...radius { let k = expf(-Float(j * j) / twoSigmaSquared); kernel[j + radius] = k; sum += k }
            for j in 0...(2 * radius) { kernel[j] /= sum }
            for y in 0..<h {
                let row = input + y * w, out = temp + y * w
                for x in 0..<w {
                    var v: Float = 0
                    for j in -radius...radius { v += kernel[j + radius] * row[min(w - 1, max(0, x + j))] }
                    out[x] = v
                }
            }
            for y in 0..<h {
                let out = output + y * w
                for x in 0..<w {
                    var v: Float = 0
                    for j in -radius...radius { v += kernel[j + radius] * temp[min(h - 1, max(0, y + j)) * w + x] }
                    out[x] = v
                }
            }
        }
    }

    /// A low-resolution capture: the image shrunk to (smallHeight, smallWidth) by area averaging
    /// (each small pixel the mean of the area it covers, as a coarse sensor sees it), then enlarged
    /// back by bilinear interpolation between pixel centres. `temp` needs width·height floats and
    /// the small image must be no larger than the original.
    public static func lowResolution(_ input: UnsafePointer<Float>, width w: Int, height h: Int, smallWidth: Int, smallHeight: Int,
                                     into output: UnsafeMutablePointer<Float>, temp: UnsafeMutablePointer<Float>) {
        let sw = min(w, max(1, smallWidth)), sh = min(h, max(1, smallHeight))
        // temp: rows shrunk (h, sw), then the small image (sh, sw) written over output's first sh·sw floats.
        for y in 0..<h { areaAverage(input + y * w, count: w, stride: 1, into: temp + y * sw, outputCount: sw, outputStride: 1) }
        for x in 0..<sw { areaAverage(temp + x, count: h, stride: sw, into: output + x, outputCount: sh, outputStride: sw) }
        // Back up: the small image moves to temp first (output is overwritten).
        temp.update(from: output, count: sw * sh)
        let rx = Float(sw) / Float(w), ry = Float(sh) / Float(h)
        for y in 0..<h {
            let fy = min(Float(sh - 1), max(0, (Float(y) + 0.5) * ry - 0.5))
            let y0 = Int(fy), y1 = min(sh - 1, y0 + 1), wy = fy - Float(y0)
            for x in 0..<w {
                let fx = min(Float(sw - 1), max(0, (Float(x) + 0.5) * rx - 0.5))
                let x0 = Int(fx), x1 = min(sw - 1, x0 + 1), wx = fx - Float(x0)
                let top = temp[y0 * sw + x0] * (1 - wx) + temp[y0 * sw + x1] * wx
                let bottom = temp[y1 * sw + x0] * (1 - wx) + temp[y1 * sw + x1] * wx
                output[y * w + x] = top * (1 - wy) + bottom * wy
            }
        }
    }

    /// One line of `count` values (every `stride`-th) averaged down to `outputCount` values: output
    /// pixel o is the mean of the input interval [o·r, (o+1)·r), r = count / outputCount, partial
    /// pixels weighted by their overlap.
    static func areaAverage(_ input: UnsafePointer<Float>, count: Int, stride: Int,
                            into output: UnsafeMutablePointer<Float>, outputCount: Int, outputStride: Int) {
        let r = Float(count) / Float(outputCount)
        for o in 0..<outputCount {
            let a = Float(o) * r, b = o + 1 == outputCount ? Float(count) : Float(o + 1) * r
            var sum: Float = 0
            var i = Int(a)
            while i < count && Float(i) < b {
                let overlap = min(b, Float(i + 1)) - max(a, Float(i))
                sum += overlap * input[i * stride]
                i += 1
            }
            output[o * outputStride] = sum / (b - a)
        }
    }

    /// Adds Gaussian noise of `sigma` grey levels to every pixel, clipped to 0...255: two uniform
    /// draws per pixel from `random` (Box–Muller), so the noise is a pure function of its key.
    public static func addNoise(_ image: UnsafeMutablePointer<Float>, count: Int, sigma: Float, random: inout KeyedRandom) {
        for i in 0..<count { image[i] = min(255, max(0, image[i] + sigma * random.nextNormal())) }
    }

    /// Contrast as a scan of weak ink on grey paper has it: background (0) becomes `paper`, full
    /// ink (255) becomes `ink`, linearly between.
    public static func remapContrast(_ image: UnsafeMutablePointer<Float>, count: Int, paper: Float, ink: Float) {
        let slope = (ink - paper) / 255
        for i in 0..<count { image[i] = paper + slope * image[i] }
    }
}
