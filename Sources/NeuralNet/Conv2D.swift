/// 2-D convolution by im2col over the whole batch and one GEMM.
public final class Conv2D: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape
    let geometry: Kernels.ConvGeometry
    let store: ParameterStore
    let weight: ArenaSlice   // (outputChannels, inputChannels, kernel, kernel)
    let bias: ArenaSlice     // (outputChannels)

    private let columns = FloatBuffer()        // (C*K*K, N*OH*OW)
    private let product = FloatBuffer()        // (OC, N*OH*OW): GEMM result, then dY in the same layout
    private let output = FloatBuffer()         // (N, OC, OH, OW)
    private let inputGradient = FloatBuffer()  // (N, C, H, W)
    private var input: UnsafeMutablePointer<Float>?

    public init(name: String, inputShape: Shape, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                store: ParameterStore) {
        self.name = name
        self.inputShape = inputShape
        geometry = Kernels.ConvGeometry(channels: inputShape.channels, height: inputShape.height, width: inputShape.width,
                                        kernel: kernelSize, stride: stride, padding: padding)
        outputShape = Shape(channels: outputChannels, height: geometry.outputHeight, width: geometry.outputWidth)
        self.store = store
        weight = store.addParameter(name + ".weight", shape: [outputChannels, inputShape.channels, kernelSize, kernelSize],
                                    initial: .heNormal(fanIn: geometry.patchSize), decays: true)
        bias = store.addParameter(name + ".bias", shape: [outputChannels], initial: .zeros, decays: false)
    }

    public var forwardMultiplyAdds: Int { outputShape.count * geometry.patchSize }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        input = x
        let pixels = geometry.outputPixels, oc = outputShape.channels, patch = geometry.patchSize
        let width = batch * pixels
        let col = columns.reserve(patch * width)
        let y = product.reserve(oc * width)
        let out = output.reserve(batch * outputShape.count)
        for n in 0..<batch {
            Kernels.im2col(geometry, input: x + n * inputShape.count, columns: col, rowStride: width, column0: n * pixels)
        }
        // Y (OC, N*P) = W (OC, CKK) · col (CKK, N*P)
        Kernels.gemm(transposeA: false, transposeB: false, m: oc, n: width, k: patch,
                     a: store.parameters + weight.offset, lda: patch, b: col, ldb: width, beta: 0, c: y, ldc: width)
        let b = store.parameters + bias.offset
        for n in 0..<batch {
            for o in 0..<oc {
                let source = y + o * width + n * pixels
                let target = out + (n * oc + o) * pixels
                let shift = b[o]
                for p in 0..<pixels { target[p] = source[p] + shift }
            }
        }
        return out
    }

    public func backward(_ dOut: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        precondition(input != nil, "\(name): backward before forward")
        let pixels = geometry.outputPixels, oc = outputShape.channels, patch = geometry.patchSize
        let width = batch * pixels
        let col = columns.pointer
        let dY = product.reserve(oc * width)
        // (N, OC, P) -> (OC, N*P), and the bias gradient on the way.
        let db = store.gradients + bias.offset
        for o in 0..<oc {
            for n in 0..<batch {
                (dY + o * width + n * pixels).update(from: dOut + (n * oc + o) * pixels, count: pixels)
            }
            db[o] += Vector.sum(dY + o * width, width)
        }
        // dW (OC, CKK) += dY (OC, N*P) · col^T (N*P, CKK)
        Kernels.gemm(transposeA: false, transposeB: true, m: oc, n: patch, k: width,
                     a: dY, lda: width, b: col, ldb: width, beta: 1, c: store.gradients + weight.offset, ldc: patch)
        guard needsInputGradient else { return nil }
        // dCol (CKK, N*P) = W^T (CKK, OC) · dY (OC, N*P); reuse the column buffer.
        Kernels.gemm(transposeA: true, transposeB: false, m: patch, n: width, k: oc,
                     a: store.parameters + weight.offset, lda: patch, b: dY, ldb: width, beta: 0, c: col, ldc: width)
        let dx = inputGradient.reserve(batch * inputShape.count)
        dx.update(repeating: 0, count: batch * inputShape.count)
        for n in 0..<batch {
            Kernels.col2imAdd(geometry, columns: col, rowStride: width, column0: n * pixels,
                              inputGradient: dx + n * inputShape.count)
        }
        return dx
    }
}
