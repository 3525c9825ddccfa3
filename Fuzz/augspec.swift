// Fuzz target: the augmentation options as text (Augmentation's AugmentationSettings(parsing:)
// for --augment and AugmentationSettings.parseElastic for --elastic), then the parsed settings
// at work: an Augmenter warps one 28x28 image for a few sample ids (affine and elastic paths).
//
// Input: "<augment text>" or "<augment text>\n<elastic text>".
@testable import Augmentation

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

/// A fixed 28x28 test image: a ring of ink.
let image: [UInt8] = (0..<784).map { i in
    let dx = i % 28 - 14, dy = i / 28 - 14, r2 = dx * dx + dy * dy
    return r2 >= 36 && r2 <= 64 ? 255 : 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let lines = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
    guard var settings = try? AugmentationSettings(parsing: lines[0]) else { return 0 }
    // The description is what a checkpoint records; it parses back to the same settings.
    if settings.elastic == nil {
        require((try? AugmentationSettings(parsing: settings.description)) == settings, "'\(lines[0])' does not round-trip")
    }
    if lines.count > 1 {
        guard let elastic = try? AugmentationSettings.parseElastic(lines[1]) else { return 0 }
        settings.elastic = elastic
    }
    let augmenter = Augmenter(settings: settings, seed: 1)
    require(augmenter.gaussian.allSatisfy { $0.isFinite }, "elastic kernel not finite for '\(text)'")
    var output = [Float](repeating: 0, count: 784)
    var scratch = [Float](repeating: 0, count: 3 * 784)
    for sampleID in [0, 1, 59_999] {
        image.withUnsafeBufferPointer { pixels in
            output.withUnsafeMutableBufferPointer { out in
                scratch.withUnsafeMutableBufferPointer { s in
                    augmenter.augment(pixels.baseAddress!, epoch: sampleID % 3, sampleID: sampleID,
                                      into: out.baseAddress!, scratch: s.baseAddress!)
                }
            }
        }
        // Bilinear interpolation of 0...255 pixels stays in 0...255; NaN never reaches a batch.
        require(output.allSatisfy { $0 >= 0 && $0 <= 255.01 }, "augmented pixels outside 0...255 for '\(text)'")
    }
    return 0
}
