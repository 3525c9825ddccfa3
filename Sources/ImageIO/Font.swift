/// A 3x5 bitmap font for labelling image tiles: digits, capital letters (small letters are drawn as
/// capitals) and a few signs. Each row is 3 bits, 4 the left column.
enum TinyFont {
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 2, 2, 2], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        "%": [5, 1, 2, 4, 5], ">": [4, 2, 1, 2, 4], ".": [0, 0, 0, 0, 2], " ": [0, 0, 0, 0, 0], ":": [0, 2, 0, 2, 0],
        "-": [0, 0, 7, 0, 0], "+": [0, 2, 7, 2, 0], "=": [0, 7, 0, 7, 0], "/": [1, 1, 2, 4, 4], "(": [1, 2, 2, 2, 1],
        ")": [4, 2, 2, 2, 4], ",": [0, 0, 0, 2, 4], "'": [2, 2, 0, 0, 0], "_": [0, 0, 0, 0, 7], "?": [7, 1, 3, 0, 2],
        "A": [2, 5, 7, 5, 5], "B": [6, 5, 6, 5, 6], "C": [3, 4, 4, 4, 3], "D": [6, 5, 5, 5, 6], "E": [7, 4, 6, 4, 7],
        "F": [7, 4, 6, 4, 4], "G": [3, 4, 5, 5, 3], "H": [5, 5, 7, 5, 5], "I": [7, 2, 2, 2, 7], "J": [1, 1, 1, 5, 2],
        "K": [5, 5, 6, 5, 5], "L": [4, 4, 4, 4, 7], "M": [5, 7, 7, 5, 5], "N": [6, 5, 5, 5, 5], "O": [2, 5, 5, 5, 2],
        "P": [6, 5, 6, 4, 4], "Q": [2, 5, 5, 6, 3], "R": [6, 5, 6, 5, 5], "S": [3, 4, 2, 1, 6], "T": [7, 2, 2, 2, 2],
        "U": [5, 5, 5, 5, 7], "V": [5, 5, 5, 5, 2], "W": [5, 5, 7, 7, 5], "X": [5, 5, 2, 5, 5], "Y": [5, 5, 2, 2, 2],
        "Z": [7, 1, 2, 4, 7],
    ]

    /// The glyph drawn for `ch`: its capital for a small letter, "?" for one the font lacks.
    static func glyph(_ ch: Character) -> [UInt8] {
        if let rows = glyphs[ch] { return rows }
        if let capital = ch.uppercased().first, let rows = glyphs[capital] { return rows }
        return glyphs["?"] ?? []
    }
}

extension Image8 {
    /// Draws `text` with its top-left corner at (x, y), each font pixel `scale` pixels square.
    public mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 1, value: UInt8 = 255, color: (UInt8, UInt8, UInt8)? = nil) {
        var cursor = x
        for ch in text {
            let rows = TinyFont.glyph(ch)
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

    /// The width `drawText` takes for `text` at `scale` (the last glyph's gap included).
    public static func textWidth(_ text: String, scale: Int = 1) -> Int { text.count * 4 * scale }
}
