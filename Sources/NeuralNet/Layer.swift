/// Training or evaluation: Dropout and BatchNorm read it; nothing global.
public enum Mode: Sendable {
    case training
    case evaluation
}

/// What a forward pass may depend on besides its input: the mode, and the keys of the
/// counter-based randomness (Dropout masks are a pure function of seed, step, rank, layer).
public struct PassContext: Sendable {
    public var mode: Mode
    public var seed: UInt64
    public var step: UInt64
    public var rank: Int

    public init(mode: Mode, seed: UInt64 = 0, step: UInt64 = 0, rank: Int = 0) {
        self.mode = mode
        self.seed = seed
        self.step = step
        self.rank = rank
    }
}

/// One stage of a `Network`. Activations are NCHW Float32, batch first.
///
/// `forward` reads the input (which must stay valid until `backward`; ReLU overwrites it in place,
/// which is safe because no layer reads its own output in backward) and returns its output,
/// usually a buffer the layer owns. `backward` takes the gradient of the loss with respect to
/// that output, ADDS the parameter gradients into the store's gradient arena, and returns the
/// gradient with respect to the input (nil when `needsInputGradient` is false: the first layer).
/// Layers may overwrite the output gradient they are given.
public protocol Layer: AnyObject {
    var name: String { get }
    var inputShape: Shape { get }
    var outputShape: Shape { get }
    /// Multiply-adds of one sample's forward pass (for FLOP figures).
    var forwardMultiplyAdds: Int { get }

    func forward(_ input: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float>
    func backward(_ outputGradient: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>?
}
