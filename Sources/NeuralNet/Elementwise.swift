import CKernels
import CounterRNG

/// max(0, x).
public final class ReLU: Layer {
    public let name: String
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    private var lastOutput: UnsafeMutablePointer<Float>?

    public init(name: String, inputShape: Shape) {
        self.name = name
        self.inputShape = inputShape
    }

    public var forwardMultiplyAdds: Int { 0 }

    /// In place: no layer here reads its own output in backward, so the input may be overwritten.
    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        ReLU.rectify(x, count: batch * inputShape.count)
        lastOutput = x
        return x
    }

    /// The output gradient is masked in place: it belongs to the layer above and is not read again.
    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard needsInputGradient else { return nil }
        guard let y = lastOutput else { preconditionFailure("\(name): backward before forward") }
        ReLU.maskGradient(dY, output: y, count: batch * inputShape.count)
        return dY
    }

    /// x = max(0, x), in place.
    static func rectify(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let zero = Vector.Lanes(repeating: 0)
        var i = 0
        while i + 16 <= count {
            let v = Vector.load(x + i)
            Vector.store(v.replacing(with: zero, where: v .< zero), x + i)   // a blend; pointwiseMax is not vectorised
            i += 16
        }
        while i < count { x[i] = max(x[i], 0); i += 1 }
    }

    /// dY = 0 where the ReLU's output y is not positive, in place.
    static func maskGradient(_ dY: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, count: Int) {
        let zero = Vector.Lanes(repeating: 0)
        var i = 0
        while i + 16 <= count {
            Vector.store(Vector.load(dY + i).replacing(with: 0, where: Vector.load(y + i) .<= zero), dY + i)
            i += 16
        }
        while i < count { if y[i] <= 0 { dY[i] = 0 }; i += 1 }
    }
}

/// (N, C, H, W) -> (N, C*H*W): the same memory, a new shape.
public final class Flatten: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape

    public init(name: String, inputShape: Shape) {
        self.name = name
        self.inputShape = inputShape
        outputShape = .vector(inputShape.count)
    }

    public var forwardMultiplyAdds: Int { 0 }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> { x }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        needsInputGradient ? dY : nil
    }
}

/// Inverted dropout: in training each element is kept with probability 1-p and scaled by
/// 1/(1-p); in evaluation it is the identity. The mask is a pure function of
/// (seed, step, rank, layer index, element), so a resumed run draws the same masks.
public final class Dropout: Layer {
    public let name: String
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public let rate: Float
    let layerIndex: Int
    private let output = FloatBuffer()
    private let mask = FloatBuffer()   // (N, features): 0 or 1/(1-p)
    private var maskActive = false

    public init(name: String, inputShape: Shape, rate: Float, layerIndex: Int) {
        self.name = name
        self.inputShape = inputShape
        self.rate = rate
        self.layerIndex = layerIndex
    }

    public var forwardMultiplyAdds: Int { 0 }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        guard context.mode == .training, rate > 0 else { maskActive = false; return x }
        maskActive = true
        let count = batch * inputShape.count
        let y = output.reserve(count)
        let m = mask.reserve(count)
        let keep = 1 - rate
        let scale = 1 / keep
        // 24-bit uniforms compared with the keep probability; two per 64-bit draw.
        let threshold = UInt32(Double(keep) * 16_777_216.0)
        // KeyedRandom's draws 1, 2, ... (ck_dropout states the mapping, and the tests check it against KeyedRandom).
        let random = KeyedRandom(seed: context.seed, purpose: .dropout, context.step, UInt64(context.rank), UInt64(layerIndex))
        ck_dropout(random.key, x, y, m, count, threshold, scale)
        return y
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard needsInputGradient else { return nil }
        guard maskActive else { return dY }
        let m = mask.pointer
        for i in 0..<(batch * inputShape.count) { dY[i] *= m[i] }
        return dY
    }
}
