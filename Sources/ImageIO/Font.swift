/// A 3x5 bitmap font for labelling image tiles: digits and a few signs.
enum TinyFont {
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 2, 2, 2], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        "%": [5, 1, 2, 4, 5], ">": [4, 2, 1, 2, 4], ".": [0, 0, 0, 0, 2], " ": [0, 0, 0, 0, 0], ":": [0, 2, 0, 2, 0],
    ]
}

extension Image8 {
    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` pixels square.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 1, value: UInt8 = 255, color: (UInt8, UInt8, UInt8)? = nil) {
        var cursor = x
        for ch in text {
            let rows = TinyFont.glyphs[ch] ?? TinyFont.glyphs[" "]!
            for (row, bits) in rows.enumerated() {
                for col in 0..<3 where bits & (4 >> UInt8(col)) != 0 {
                    for dy in 0..<scale { for dx in 0..<scale {
                        let px = cursor + col * scale + dx, py = y + row * scale + dy
                        guard px >= 0, py >= 0, px < width, py < height else { continue }
                        let base = (py * width + px) * channels
                        if channels == 3, let color {
                            pixels[base] = color.0; pixels[base + 1] = color.1; pixels[base + 2] = color.2
                        } else {
                            for c in 0..<channels { pixels[base + c] = value }
                        }
                    } }
                }
            }
            cursor += 4 * scale
        }
    }
}
