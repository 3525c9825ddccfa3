/// Turns a photo or scan of one digit into an MNIST-like 28x28 input, the way MNIST was made
/// (LeCun et al.): light ink on black, the ink's bounding box scaled so its longer side is 20
/// pixels (aspect kept, area averaging), placed in 28x28 with its centre of mass at the centre.
/// For another field of H×W the box is scaled proportionally: to fit 20·W/28 by 20·H/28.
///
/// A user's picture is not as clean as NIST's scans, so on the way: the paper's noise is measured on
/// the border and ink must stand clear of it, specks away from the digit are dropped before the box
/// is taken, faint ink is stretched to white, and strokes far thinner or thicker than MNIST's are
/// brought towards its widths (docs/robustness.md measures what each buys).
public enum DigitPreprocessor {
    public struct Result: Sendable {
        /// (height, width) values 0...255, ink bright; (28, 28) unless asked otherwise.
        public var pixels: [Float]
        /// True when the image was dark ink on light paper (and was inverted).
        public var inverted: Bool
    }

    /// - Throws: when the image has no ink (nothing differs enough from the background).
    public static func prepare(_ image: GreyImage, path: String, height: Int = 28, width: Int = 28) throws -> Result {
        var (ink, inverted) = try normalizedInk(image, path: path)
        removeSpecks(&ink, width: image.width, height: image.height)
        guard let box = inkBox(ink, width: image.width, height: image.height) else {
            throw ImageIOError("\(path): no ink found; nothing to read")
        }
        var small = scaledToTwenty(ink, width: image.width, box: box,
                                   fieldWidth: max(1, width), fieldHeight: max(1, height))
        // Strokes finer than a pixel of the 20-pixel box (a fine pen on a large photo) are averaged
        // into a faint line: their brightest becomes full ink again, as MNIST's strokes have it.
        if let top = small.values.max(), top > 0, top < 1 { for i in small.values.indices { small.values[i] /= top } }
        let field = centredByMass(small, fieldWidth: max(1, width), fieldHeight: max(1, height))
        return Result(pixels: normalizedStrokes(field, width: max(1, width), height: max(1, height)), inverted: inverted)
    }

    /// Ink above this (of 0...1) is clear ink: it makes the bounding box and the pieces of `removeSpecks`.
    static let clearInk: Float = 0.25

    /// The ink's bounding box in the source image.
    struct Box {
        var minX: Int, minY: Int, width: Int, height: Int
    }

    /// Ink 0...1 (light on dark), row-major.
    struct InkImage {
        var width: Int, height: Int, values: [Float]
    }

    /// Ink as 0...1 over a background of 0, light on dark whatever the input's polarity, and
    /// whether it was inverted. The border decides the polarity: it is paper. Its median is the
    /// paper's level and the distance from there to its 84th percentile on the ink's side (one
    /// standard deviation of Gaussian noise) the paper's grain or the sensor's noise; both ignore
    /// strokes that touch the border. Ink must stand clear of that noise (the noise floor), and the
    /// rest is stretched to 0...1, so faint ink on grey paper comes out as MNIST's white on black.
    static func normalizedInk(_ image: GreyImage, path: String) throws -> (ink: [Float], inverted: Bool) {
        let w = image.width, h = image.height
        var border = [Float]()
        border.reserveCapacity(2 * (w + h))
        for x in 0..<w { border.append(image.values[x]); border.append(image.values[(h - 1) * w + x]) }
        for y in 0..<h { border.append(image.values[y * w]); border.append(image.values[y * w + w - 1]) }
        border.sort()
        // Polarity: the border is paper. Light border -> dark ink on light paper -> invert.
        let paper = border[border.count / 2]
        let inverted = paper > 0.5
        let inkSide = inverted ? 1 - border[Int(0.16 * Float(border.count - 1))] : border[Int(0.84 * Float(border.count - 1))]
        var ink = image.values.map { inverted ? 1 - $0 : $0 }
        // Background level and contrast: ink is what stands clearly above the paper.
        let background = inverted ? 1 - paper : paper
        let spread = max(0, inkSide - background)
        let brightest = ink.max() ?? 0
        guard brightest - background > 0.15 else {
            throw ImageIOError("\(path): no ink found (the image is blank or nearly uniform); nothing to read")
        }
        // The noise floor: within 2.5 spreads of the paper is the paper's own noise (for clean paper
        // that is the paper's level itself). At most halfway to the brightest, so faint ink on grainy
        // paper keeps its upper half.
        let floor = background + min(2.5 * spread, 0.5 * (brightest - background))
        let peak = fullInk(ink, above: floor, brightest: brightest)
        let contrast = peak - floor
        for i in 0..<ink.count { ink[i] = max(0, min(1, (ink[i] - floor) / contrast)) }
        return (ink, inverted)
    }

    /// The level of full ink: the 95th percentile of the pixels in the upper half between the floor
    /// and the brightest (a histogram of 1,024 bins), so that a few noise spikes brighter than the
    /// strokes do not set it. For clean ink, whose strokes have a solid core, that is the brightest
    /// level; it is never below the midpoint, so paper cannot be stretched into ink.
    static func fullInk(_ ink: [Float], above floor: Float, brightest: Float) -> Float {
        let bins = 1024, middle = floor + 0.5 * (brightest - floor), span = brightest - middle
        guard span > 1e-4 else { return brightest }
        var histogram = [Int](repeating: 0, count: bins)
        var count = 0
        for v in ink where v > middle {
            histogram[min(bins - 1, Int((v - middle) / span * Float(bins)))] += 1
            count += 1
        }
        var above = 0
        for bin in stride(from: bins - 1, through: 0, by: -1) {
            above += histogram[bin]
            // The top 5% reached: full ink is this bin's upper edge.
            if Double(above) >= 0.05 * Double(count) { return middle + span * Float(bin + 1) / Float(bins) }
        }
        return brightest
    }

    /// Clears specks: 8-connected pieces of clear ink smaller than 5% of the largest piece (isolated
    /// noise above the floor, dust, a dot of dirt) and away from the large pieces, which would
    /// otherwise stretch the bounding box over the whole picture and shrink the digit. Small pieces
    /// near the large ones (within an eighth of their box's longer side) are the breaks of a faint
    /// or fine stroke, and stay.
    static func removeSpecks(_ ink: inout [Float], width w: Int, height h: Int) {
        var piece = [Int32](repeating: 0, count: ink.count)   // 0: not clear ink or not yet reached
        var pieces: [(size: Int, box: (minX: Int, minY: Int, maxX: Int, maxY: Int))] = [(0, (0, 0, 0, 0))]   // [0]: none
        var stack = [Int]()
        for start in 0..<ink.count where ink[start] > clearInk && piece[start] == 0 {
            let label = Int32(pieces.count)
            var size = 0, box = (minX: w, minY: h, maxX: -1, maxY: -1)
            piece[start] = label
            stack.append(start)
            while let i = stack.popLast() {
                size += 1
                let x = i % w, y = i / w
                box = (min(box.minX, x), min(box.minY, y), max(box.maxX, x), max(box.maxY, y))
                for ny in max(0, y - 1)...min(h - 1, y + 1) {
                    for nx in max(0, x - 1)...min(w - 1, x + 1) {
                        let j = ny * w + nx
                        if ink[j] > clearInk && piece[j] == 0 { piece[j] = label; stack.append(j) }
                    }
                }
            }
            pieces.append((size, box))
        }
        guard pieces.count > 2, let largest = pieces.map(\.size).max() else { return }
        let smallest = Double(largest) * 0.05
        // The large pieces' box, grown by an eighth of its longer side.
        var near = (minX: w, minY: h, maxX: -1, maxY: -1)
        for p in pieces.dropFirst() where Double(p.size) >= smallest {
            near = (min(near.minX, p.box.minX), min(near.minY, p.box.minY), max(near.maxX, p.box.maxX), max(near.maxY, p.box.maxY))
        }
        let margin = max(1, max(near.maxX - near.minX, near.maxY - near.minY) / 8)
        let speck = pieces.enumerated().map { label, p in
            label > 0 && Double(p.size) < smallest && (p.box.maxX < near.minX - margin || p.box.minX > near.maxX + margin
                                          || p.box.maxY < near.minY - margin || p.box.minY > near.maxY + margin)
        }
        for i in 0..<ink.count where speck[Int(piece[i])] { ink[i] = 0 }
    }

    /// The bounding box of clear ink, or nil when there is none.
    static func inkBox(_ ink: [Float], width w: Int, height h: Int) -> Box? {
        var minX = w, minY = h, maxX = -1, maxY = -1
        for y in 0..<h { for x in 0..<w where ink[y * w + x] > clearInk {
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

    /// The stroke widths MNIST's digits have once boxed into 20 pixels (`strokeWidth` over its test
    /// set): median 2.26 px, 1% below 1.22, 1% above 4.20. For another field they scale with its
    /// shorter side.
    static let mnistStrokeWidths: ClosedRange<Float> = 1.22...4.20

    /// The pen's stroke width in pixels: the ink taken as what is brighter than half the brightest
    /// (so a blur's soft edges, which widen a stroke but not the pen, do not count), and its width
    /// 2·area / edge length (a stroke w wide and L long has area w·L and edges 2·L; the edge length
    /// is Σ|∇| over the ink's mask, forward differences, which measures slanted edges too).
    static func strokeWidth(_ pixels: [Float], width w: Int, height h: Int) -> Float {
        let half = 0.5 * (pixels.max() ?? 0)
        guard half > 0 else { return 0 }
        @inline(__always) func inked(_ x: Int, _ y: Int) -> Float { x < w && y < h && pixels[y * w + x] > half ? 1 : 0 }
        var area: Float = 0, edges: Float = 0
        for y in 0..<h {
            for x in 0..<w {
                let v = inked(x, y), dx = inked(x + 1, y) - v, dy = inked(x, y + 1) - v
                area += v
                edges += (dx * dx + dy * dy).squareRoot()
            }
        }
        return edges > 0 ? 2 * area / edges : 0
    }

    /// Strokes far thinner or thicker than MNIST's (a fine pen on a large photo, a felt marker)
    /// brought towards its range: a 3x3 grey dilation (or erosion), which adds (or takes) about two
    /// pixels of width, blended in from nothing at the edge of MNIST's range (its 1st and 99th
    /// percentiles) to fully 0.2 px below it (a line 1 px wide is thickened fully) or 1 px above it.
    /// Strokes inside the range, as 98% of MNIST's are, are left alone.
    static func normalizedStrokes(_ pixels: [Float], width w: Int, height h: Int) -> [Float] {
        let unit = Float(min(w, h)) / 28
        let low = mnistStrokeWidths.lowerBound * unit, high = mnistStrokeWidths.upperBound * unit
        let stroke = strokeWidth(pixels, width: w, height: h)
        let thicken = stroke < low, strength: Float
        if thicken {
            strength = min(1, (low - stroke) / (0.2 * unit))
        } else if stroke > high {
            strength = min(1, (stroke - high) / (1.0 * unit))
        } else {
            return pixels
        }
        var out = pixels
        for y in 0..<h {
            for x in 0..<w {
                var extreme = pixels[y * w + x]
                for ny in max(0, y - 1)...min(h - 1, y + 1) {
                    for nx in max(0, x - 1)...min(w - 1, x + 1) {
                        extreme = thicken ? max(extreme, pixels[ny * w + nx]) : min(extreme, pixels[ny * w + nx])
                    }
                }
                out[y * w + x] += strength * (extreme - pixels[y * w + x])
            }
        }
        return out
    }
}

