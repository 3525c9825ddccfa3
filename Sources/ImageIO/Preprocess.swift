/// Turns a photo or scan of one digit into an MNIST-like 28x28 input, the way MNIST was made
/// (LeCun et al.): light ink on black, the ink's bounding box scaled so its longer side is 20
/// pixels (aspect kept, area averaging), placed in 28x28 with its centre of mass at the centre.
/// For another field of H×W the box is scaled proportionally: to fit 20·W/28 by 20·H/28.
public enum DigitPreprocessor {
    public struct Result: Sendable {
        /// (height, width) values 0...255, ink bright; (28, 28) unless asked otherwise.
        public var pixels: [Float]
        /// True when the image was dark ink on light paper (and was inverted).
        public var inverted: Bool
    }

    /// - Throws: when the image has no ink (nothing differs enough from the background).
    public static func prepare(_ image: GreyImage, path: String, height: Int = 28, width: Int = 28) throws -> Result {
        let (ink, inverted) = try normalizedInk(image, path: path)
        guard let box = inkBox(ink, width: image.width, height: image.height) else {
            throw ImageIOError("\(path): no ink found; nothing to read")
        }
        let small = scaledToTwenty(ink, width: image.width, box: box,
                                   fieldWidth: max(1, width), fieldHeight: max(1, height))
        return Result(pixels: centredByMass(small, fieldWidth: max(1, width), fieldHeight: max(1, height)), inverted: inverted)
    }

    /// The ink's bounding box in the source image.
    struct Box {
        var minX: Int, minY: Int, width: Int, height: Int
    }

    /// Ink 0...1 (light on dark), row-major.
    struct InkImage {
        var width: Int, height: Int, values: [Float]
    }

    /// Ink as 0...1 over a background of 0, light on dark whatever the input's polarity, and
    /// whether it was inverted. The border decides the polarity: it is paper.
    static func normalizedInk(_ image: GreyImage, path: String) throws -> (ink: [Float], inverted: Bool) {
        let w = image.width, h = image.height
        // Polarity: the border is paper. Light border -> dark ink on light paper -> invert.
        var borderSum: Float = 0, borderCount = 0
        for x in 0..<w { borderSum += image.values[x] + image.values[(h - 1) * w + x]; borderCount += 2 }
        for y in 0..<h { borderSum += image.values[y * w] + image.values[y * w + w - 1]; borderCount += 2 }
        let border = borderSum / Float(max(1, borderCount))
        let inverted = border > 0.5
        var ink = image.values.map { inverted ? 1 - $0 : $0 }
        // Background level and contrast: ink is what stands clearly above the paper.
        let background = inverted ? 1 - border : border
        let peak = ink.max() ?? 0
        let contrast = peak - background
        guard contrast > 0.15 else {
            throw ImageIOError("\(path): no ink found (the image is blank or nearly uniform); nothing to read")
        }
        for i in 0..<ink.count { ink[i] = max(0, min(1, (ink[i] - background) / contrast)) }
        return (ink, inverted)
    }

    /// The bounding box of clear ink (above 0.25), or nil when there is none.
    static func inkBox(_ ink: [Float], width w: Int, height h: Int) -> Box? {
        var minX = w, minY = h, maxX = -1, maxY = -1
        for y in 0..<h { for x in 0..<w where ink[y * w + x] > 0.25 {
            minX = min(minX, x); maxX = max(maxX, x); minY = min(minY, y); maxY = max(maxY, y)
        } }
        guard maxX >= 0 else { return nil }
        return Box(minX: minX, minY: minY, width: maxX - minX + 1, height: maxY - minY + 1)
    }

    /// The box scaled so its longer side is 20 pixels in a 28x28 field (20·W/28 by 20·H/28 in
    /// another), aspect kept. Area averaging: each output pixel is the mean of the source area it covers.
    static func scaledToTwenty(_ ink: [Float], width w: Int, box: Box, fieldWidth: Int = 28, fieldHeight: Int = 28) -> InkImage {
        let boxW = box.width, boxH = box.height
        // For 28x28 both limits are 20 and the scale is 20 / max(boxW, boxH), as before.
        let limitW = Float(20 * fieldWidth) / 28, limitH = Float(20 * fieldHeight) / 28
        let scale = min(limitW / Float(boxW), limitH / Float(boxH))
        let outW = max(1, Int((Float(boxW) * scale).rounded())), outH = max(1, Int((Float(boxH) * scale).rounded()))
        var small = [Float](repeating: 0, count: outW * outH)
        let sx = Float(boxW) / Float(outW), sy = Float(boxH) / Float(outH)
        for oy in 0..<outH {
            let y0 = Float(oy) * sy, y1 = y0 + sy
            for ox in 0..<outW {
                let x0 = Float(ox) * sx, x1 = x0 + sx
                var sum: Float = 0, area: Float = 0
                var iy = Int(y0)
                while Float(iy) < y1 && iy < boxH {
                    let wy = min(y1, Float(iy + 1)) - max(y0, Float(iy))
                    var ix = Int(x0)
                    while Float(ix) < x1 && ix < boxW {
                        let wx = min(x1, Float(ix + 1)) - max(x0, Float(ix))
                        sum += wx * wy * ink[(box.minY + iy) * w + box.minX + ix]
                        area += wx * wy
                        ix += 1
                    }
                    iy += 1
                }
                small[oy * outW + ox] = area > 0 ? sum / area : 0
            }
        }
        return InkImage(width: outW, height: outH, values: small)
    }

    /// (fieldHeight, fieldWidth) values 0...255: `small` placed with its centre of mass at the centre of the field.
    static func centredByMass(_ small: InkImage, fieldWidth: Int = 28, fieldHeight: Int = 28) -> [Float] {
        let outW = small.width, outH = small.height
        var mass: Float = 0, cx: Float = 0, cy: Float = 0
        for y in 0..<outH { for x in 0..<outW { let v = small.values[y * outW + x]; mass += v; cx += v * Float(x); cy += v * Float(y) } }
        cx /= max(mass, 1e-6); cy /= max(mass, 1e-6)
        // MNIST's centres of mass sit at pixel (14, 14) (measured over its test set: 14.00, 13.99).
        let centreX = Float(fieldWidth) / 2, centreY = Float(fieldHeight) / 2
        let offsetX = Int((centreX - cx).rounded()), offsetY = Int((centreY - cy).rounded())
        var pixels = [Float](repeating: 0, count: fieldWidth * fieldHeight)
        for y in 0..<outH { for x in 0..<outW {
            let tx = x + offsetX, ty = y + offsetY
            if tx >= 0 && tx < fieldWidth && ty >= 0 && ty < fieldHeight {
                pixels[ty * fieldWidth + tx] = small.values[y * outW + x] * 255
            }
        } }
        return pixels
    }
}
