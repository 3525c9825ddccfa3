// Fuzz target: a model spec as text (NeuralNet's ModelSpec(parsing:), also ModelSpec.named), the
// form of --model and of the "model" entry in a checkpoint's metadata.
import NeuralNet

/// `precondition` whose message survives an optimised build.
func require(_ condition: Bool, _ message: @autoclosure () -> String = "") { if !condition { fatalError(message()) } }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? ModelSpec.named(text)
    guard let spec = try? ModelSpec(parsing: text) else { return 0 }
    // What parses is within the limits, and prints back to text that parses to the same spec.
    require(!spec.layers.isEmpty && spec.layers.count <= ModelSpec.maxLayers)
    require((try? ModelSpec(parsing: spec.description)) == spec, "'\(text)' does not round-trip via '\(spec)'")
    return 0
}
