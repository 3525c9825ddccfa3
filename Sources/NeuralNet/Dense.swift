/// Fully connected: y (N, O) = x (N, I) · W^T + b, with W stored (O, I).
public final class Dense: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape
    let store: ParameterStore
    let weight: ArenaSlice   // (outputs, inputs)
    let bias: ArenaSlice     // (outputs)
    private let output = FloatBuffer()         // (N, O)
    private let packedWeights = PackedWeights()  // W^T (I, O) as packed GEMM panels, while W is unchanged
    private let workspace: GradientWorkspace   // input gradient (N, I) goes here
    private var input: UnsafeMutablePointer<Float>?

    public init(name: String, inputShape: Shape, outputs: Int, store: ParameterStore,
                workspace: GradientWorkspace = GradientWorkspace()) {
        self.name = name
        self.workspace = workspace
        self.inputShape = inputShape
        outputShape = .vector(outputs)
        self.store = store
        weight = store.addParameter(name + ".weight", shape: [outputs, inputShape.count],
                                    initial: .heNormal(fanIn: inputShape.count), decays: true)
        bias = store.addParameter(name + ".bias", shape: [outputs], initial: .zeros, decays: false)
    }

    public var forwardMultiplyAdds: Int { inputShape.count * outputShape.count }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        input = x
        let i = inputShape.count, o = outputShape.count
        let y = output.reserve(batch * o)
        let b = store.parameters + bias.offset
        for n in 0..<batch { (y + n * o).update(from: b, count: o) }
        let w = store.parameters + weight.offset
        // W^T is packed once while W is unchanged (evaluation, prediction): at batch 1, packing it
        // cost more than the product.
        let packed = packedWeights.current(store, floats: Kernels.Packed.bFloats(k: i, n: o)) {
            Kernels.Packed.packB(transpose: true, w, ldb: i, k: i, n: o, into: $0)
        }
        Kernels.Packed.gemm(m: batch, n: o, k: i, a: .rows(x, ld: i), b: .packed(packed), beta: 1, c: y, ldc: o)
        return y
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard let x = input else { preconditionFailure("\(name): backward before forward") }
        let i = inputShape.count, o = outputShape.count
        // dW (O, I) += dY^T (O, N) · x (N, I)
        Kernels.gemm(transposeA: true, transposeB: false, m: o, n: i, k: batch,
                     a: dY, lda: o, b: x, ldb: i, beta: 1, c: store.gradients + weight.offset, ldc: i)
        let db = store.gradients + bias.offset
        for n in 0..<batch {
            let row = dY + n * o
            for j in 0..<o { db[j] += row[j] }
        }
        guard needsInputGradient else { return nil }
        // dX (N, I) = dY (N, O) · W (O, I)
        let dx = workspace.inputGradient(batch * i, avoiding: dY)
        Kernels.gemm(transposeA: false, transposeB: false, m: batch, n: i, k: o,
                     a: dY, lda: o, b: store.parameters + weight.offset, ldb: i, beta: 0, c: dx, ldc: i)
        return dx
    }
}
