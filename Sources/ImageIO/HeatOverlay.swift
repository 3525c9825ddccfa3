/// The colours of a heat map (0...1): a ramp of our own, dark blue through blue, cyan and yellow to
/// red, so that "cold" and "hot" read at a glance and the ink under a cold region stays visible.
public enum HeatColors {
    /// (value, red, green, blue) stops, linearly interpolated between.
    static let stops: [(Float, Float, Float, Float)] = [
        (0.00, 20, 20, 110),
        (0.25, 30, 110, 255),
        (0.50, 40, 220, 200),
        (0.75, 250, 220, 40),
        (1.00, 220, 30, 20),
    ]

    /// The colour of `value`, clamped to 0...1 (a value that is not a number is cold).
    public static func color(_ value: Float) -> (Float, Float, Float) {
        let v = value.isNaN ? 0 : max(0, min(1, value))
        for i in 1..<stops.count where v <= stops[i].0 {
            let (a, b) = (stops[i - 1], stops[i])
            let t = (v - a.0) / (b.0 - a.0)
            return (a.1 + t * (b.1 - a.1), a.2 + t * (b.2 - a.2), a.3 + t * (b.3 - a.3))
        }
        let last = stops[stops.count - 1]
        return (last.1, last.2, last.3)
    }
}

extension Image8 {
    /// A grey tile (values 0...255 as Float, (tileHeight, tileWidth)) magnified `zoom` times, with
    /// `heat` (0...1, (tileHeight * zoom, tileWidth * zoom): already magnified, smoothly) blended
    /// over it in `HeatColors`: `opacity` of the colour, the rest the grey. RGB images only.
    public mutating func placeHeatOverlay(_ tile: UnsafePointer<Float>, heat: UnsafePointer<Float>, tileWidth: Int, tileHeight: Int,
                                          x: Int, y: Int, zoom: Int = 1, opacity: Float = 0.55) {
        precondition(channels == 3, "a heat overlay is drawn on an RGB image")
        let wide = tileWidth * zoom
        for ty in 0..<(tileHeight * zoom) {
            for tx in 0..<wide {
                let px = x + tx, py = y + ty
                guard px >= 0, py >= 0, px < width, py < height else { continue }
                let grey = max(0, min(255, tile[(ty / zoom) * tileWidth + tx / zoom]))
                let (r, g, b) = HeatColors.color(heat[ty * wide + tx])
                let base = (py * width + px) * 3
                pixels[base] = Image8.byte(opacity * r + (1 - opacity) * grey)
                pixels[base + 1] = Image8.byte(opacity * g + (1 - opacity) * grey)
                pixels[base + 2] = Image8.byte(opacity * b + (1 - opacity) * grey)
            }
        }
    }

    /// A horizontal bar of the heat colours, 0 at the left, 1 at the right. RGB images only.
    public mutating func drawHeatScale(x: Int, y: Int, width barWidth: Int, height barHeight: Int) {
        precondition(channels == 3, "a heat scale is drawn on an RGB image")
        for bx in 0..<barWidth {
            let (r, g, b) = HeatColors.color(Float(bx) / Float(max(1, barWidth - 1)))
            for by in 0..<barHeight {
                let px = x + bx, py = y + by
                guard px >= 0, py >= 0, px < width, py < height else { continue }
                let base = (py * width + px) * 3
                pixels[base] = Image8.byte(r); pixels[base + 1] = Image8.byte(g); pixels[base + 2] = Image8.byte(b)
            }
        }
    }

    static func byte(_ value: Float) -> UInt8 { UInt8(max(0, min(255, value.rounded()))) }
}
