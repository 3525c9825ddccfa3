/// 2-D convolution, one sample at a time: im2col into a column block that stays in L2, then one
/// GEMM straight into the NCHW output. The batch is cut into a fixed number of groups that run in
/// parallel, each with its own columns and partial weight gradient; the partials are added in group
/// order, so results do not depend on the thread count.
public final class Conv2D: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape
    let geometry: Kernels.ConvGeometry
    let store: ParameterStore
    let weight: ArenaSlice   // (outputChannels, inputChannels, kernel, kernel)
    let bias: ArenaSlice     // (outputChannels)

    /// Groups a batch is cut into (at most): the parallelism available to a backward pass.
    static let maximumGroups = 8

    private let columns = FloatBuffer()         // (G, C*K*K, OH*OW): one sample's columns per group
    private let packedWeights = PackedWeights()      // W as packed GEMM panels, while the weights are unchanged
    private let packedTransposed = FloatBuffer()     // the input gradient's weights (W', W^T, or W' transformed for
                                                     // Winograd) as packed panels, once per backward pass
    private let flippedWeights = FloatBuffer()       // W' (C, OC*K*K): the input gradient's convolution weights
    private let winogradWeights = PackedWeights()    // U (α², OC, C) packed, α = K+1: W transformed for Winograd,
                                                     // while the weights are unchanged
    private let winogradScratch = FloatBuffer()      // per thread: V (α², C, tiles) and M (α², OC, tiles) of a chunk
    private let partials = FloatBuffer()        // (G, OC*C*K*K + OC): weight and bias gradient per group
    private let output = FloatBuffer()          // (N, OC, OH, OW)
    private let workspace: GradientWorkspace    // input gradient (N, C, H, W) goes here
    private var input: UnsafeMutablePointer<Float>?

    /// Set by `Network.backward` for the duration of a backward pass: called between samples on the
    /// thread that started the pass (slot 0), to let started gradient reductions progress.
    var backwardProgress: (() -> Void)?

    public init(name: String, inputShape: Shape, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                store: ParameterStore, workspace: GradientWorkspace = GradientWorkspace()) {
        self.name = name
        self.workspace = workspace
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

    /// Samples [start, end) of group g when a batch is cut into `groups` nearly equal runs.
    @inline(__always)
    private static func samples(of g: Int, groups: Int, batch: Int) -> Range<Int> {
        (g * batch / groups)..<((g + 1) * batch / groups)
    }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        input = x
        let pixels = geometry.outputPixels, oc = outputShape.channels, patch = geometry.patchSize
        let groups = min(batch, Conv2D.maximumGroups)
        // Implicit columns (a padded copy of the sample, no column matrix) where the kernel set and
        // the geometry allow, else explicit columns with rows 64-byte aligned.
        let implicitFloats = Kernels.Packed.columnsFloats(geometry)
        let rowStride = (pixels + 15) / 16 * 16
        let blockFloats = implicitFloats > 0 ? implicitFloats : patch * rowStride
        // One column block per thread, not per group: one thread's block stays in its L2 across samples.
        let slots = Kernels.threads
        let col = columns.reserve(slots * blockFloats)
        let out = output.reserve(batch * outputShape.count)
        let w = store.parameters + weight.offset, b = store.parameters + bias.offset
        let inputCount = inputShape.count, outputCount = outputShape.count, g0 = geometry
        if Kernels.Packed.winogradApplies(geometry, outputs: oc) {
            // Winograd F(2x2, KxK): each group's samples in one call (parallel inside it for one image).
            let c = inputShape.channels, k = geometry.kernel
            let u = winogradWeights.current(store, floats: Kernels.Packed.winogradWeightsFloats(m: oc, k: c, kernel: k)) {
                Kernels.Packed.winogradWeights(w, outputChannels: oc, inputChannels: c, kernel: k, adjoint: false, into: $0)
            }
            let scratchFloats = Kernels.Packed.winogradScratchFloats(g0, m: oc)
            let scratch = winogradScratch.reserve(slots * scratchFloats)
            Kernels.parallelFor(groups) { g in
                let range = Conv2D.samples(of: g, groups: groups, batch: batch)
                Kernels.Packed.winogradConvolve(g0, m: oc, weights: u, input: x + range.lowerBound * inputCount, samples: range.count,
                                                bias: b, output: out + range.lowerBound * outputCount,
                                                scratch: scratch + Kernels.workerSlot * scratchFloats)
            }
            return out
        }
        // W is packed once for the whole batch, and each sample's columns are read in place.
        let pw = packedWeights.current(store, floats: Kernels.Packed.aFloats(m: oc, k: patch)) {
            Kernels.Packed.packA(transpose: false, w, lda: patch, m: oc, k: patch, into: $0)
        }
        Kernels.parallelFor(groups) { g in
            let block = col + Kernels.workerSlot * blockFloats
            for n in Conv2D.samples(of: g, groups: groups, batch: batch) {
                let y = out + n * outputCount
                for o in 0..<oc { (y + o * pixels).update(repeating: b[o], count: pixels) }
                // Y_n (OC, P) = W (OC, CKK) · col_n (CKK, P) + bias
                if implicitFloats > 0 {
                    let cols = Kernels.Packed.prepareColumns(g0, input: x + n * inputCount, scratch: block)
                    Kernels.Packed.convolve(m: oc, n: pixels, k: patch, a: pw, columns: cols, beta: 1, c: y, ldc: pixels)
                    continue
                }
                Kernels.im2col(g0, input: x + n * inputCount, columns: block, rowStride: rowStride, column0: 0)
                Kernels.Packed.gemm(m: oc, n: pixels, k: patch, a: .packed(pw), b: .rows(block, ld: rowStride), beta: 1, c: y,
                                    ldc: pixels)
            }
        }
        return out
    }

    public func backward(_ dOut: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard let x = input else { preconditionFailure("\(name): backward before forward") }
        return packedBackward(dOut, x: x, batch: batch, needsInputGradient: needsInputGradient)
    }

    /// Backward with packed operands. Only the small operands are packed: the output
    /// gradient of each sample (as dY^T for the weight gradient) and the weights once per batch. The
    /// columns, the big operand, are read in place: the weight gradient is computed transposed,
    /// dW^T (CKK, OC) = col (CKK, P) · dY^T (P, OC), and turned round once per batch.
    /// The input gradient of a stride-1 convolution is itself a convolution, of dY padded by K-1-p
    /// with the kernels flipped and input/output channels swapped (W'): it runs as a forward pass
    /// over dY's implicit columns, straight into dx, with no column matrix and no col2im.
    private func packedBackward(_ dOut: UnsafeMutablePointer<Float>, x: UnsafeMutablePointer<Float>, batch: Int,
                                needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        let progress = backwardProgress
        let pixels = geometry.outputPixels, oc = outputShape.channels, patch = geometry.patchSize
        let groups = min(batch, Conv2D.maximumGroups)
        let rowStride = (pixels + 15) / 16 * 16, implicitFloats = Kernels.Packed.columnsFloats(geometry)
        // The column block (the input gradient's columns; the explicit columns too without implicit
        // ones), then the implicit columns' scratch.
        let columnFloats = patch * rowStride + implicitFloats
        let transposedFloats = Kernels.Packed.bFloats(k: pixels, n: oc)
        let k = geometry.kernel, c = inputShape.channels
        let gradientGeometry = Kernels.ConvGeometry(channels: oc, height: outputShape.height, width: outputShape.width,
                                                    kernel: k, stride: 1, padding: k - 1 - geometry.padding)
        // Winograd where it applies (a 3x3 or 5x5 stride-1 layer): the group's input gradients in one call.
        let winogradGradient = needsInputGradient && geometry.stride == 1 && geometry.padding < k
            && Kernels.Packed.winogradApplies(gradientGeometry, outputs: c)
        // Else the implicit columns, only where they cost no more multiply-adds than the columns: a
        // convolution that keeps the size (a valid one's input gradient would multiply its dY's zero border too).
        let implicitGradientFloats = needsInputGradient && !winogradGradient && geometry.stride == 1 && geometry.padding < k
            && inputShape.height * inputShape.width <= pixels ? Kernels.Packed.columnsFloats(gradientGeometry) : 0
        let gradientFloats = !needsInputGradient || winogradGradient ? 0
            : implicitGradientFloats > 0 ? implicitGradientFloats : Kernels.Packed.bFloats(k: oc, n: pixels)
        let blockFloats = columnFloats + transposedFloats + gradientFloats
        let slots = Kernels.threads   // one block per thread, as in forward
        let blocks = columns.reserve(slots * blockFloats)
        let partialCount = (patch * oc + oc + 15) / 16 * 16
        let part = partials.reserve(groups * partialCount)
        let dx = needsInputGradient ? workspace.inputGradient(batch * inputShape.count, avoiding: dOut) : nil
        var packedGradientWeights: UnsafeMutablePointer<Float>? = nil
        var winogradScratchFloats = 0, winogradBlocks: UnsafeMutablePointer<Float>? = nil
        if winogradGradient {
            // W transformed as the input gradient's convolution (rows: input channels, kernels flipped).
            let u = packedTransposed.reserve(Kernels.Packed.winogradWeightsFloats(m: c, k: oc, kernel: k))
            Kernels.Packed.winogradWeights(store.parameters + weight.offset, outputChannels: oc, inputChannels: c, kernel: k,
                                           adjoint: true, into: u)
            packedGradientWeights = u
            winogradScratchFloats = Kernels.Packed.winogradScratchFloats(gradientGeometry, m: c)
            winogradBlocks = winogradScratch.reserve(slots * winogradScratchFloats)
        } else if implicitGradientFloats > 0 {
            // W' (C, OC*K*K): W'[c][(o*K + ky)*K + kx] = W[o][c][K-1-ky][K-1-kx], packed once.
            let w = store.parameters + weight.offset, kk = k * k, rowLength = oc * kk
            let flipped = flippedWeights.reserve(c * rowLength)
            for ci in 0..<c {
                for o in 0..<oc {
                    let source = w + (o * c + ci) * kk, target = flipped + ci * rowLength + o * kk
                    for t in 0..<kk { target[t] = source[kk - 1 - t] }
                }
            }
            let packed = packedTransposed.reserve(Kernels.Packed.aFloats(m: c, k: rowLength))
            Kernels.Packed.packA(transpose: false, flipped, lda: rowLength, m: c, k: rowLength, into: packed)
            packedGradientWeights = packed
        } else if needsInputGradient {
            // W^T (CKK, OC), packed once for every sample's input gradient.
            let packed = packedTransposed.reserve(Kernels.Packed.aFloats(m: patch, k: oc))
            Kernels.Packed.packA(transpose: true, store.parameters + weight.offset, lda: patch, m: patch, k: oc, into: packed)
            packedGradientWeights = packed
        }
        let inputCount = inputShape.count, outputCount = outputShape.count, g0 = geometry
        Kernels.parallelFor(groups) { g in
            let block = blocks + Kernels.workerSlot * blockFloats
            // packedDY: dY packed for the column path, or dY's padded copy and tables for the implicit one.
            let packedDYT = block + columnFloats, packedDY = packedDYT + transposedFloats
            let dWT = part + g * partialCount, db = dWT + patch * oc
            db.update(repeating: 0, count: oc)
            var first = true
            let range = Conv2D.samples(of: g, groups: groups, batch: batch)
            for n in range {
                if let progress, Kernels.workerSlot == 0 { progress() }
                let dY = dOut + n * outputCount
                for o in 0..<oc { db[o] += Vector.sum(dY + o * pixels, pixels) }
                // dW^T_g (CKK, OC) += col_n (CKK, P) · dY_n^T (P, OC); the columns are rebuilt, not kept.
                Kernels.Packed.packB(transpose: true, dY, ldb: pixels, k: pixels, n: oc, into: packedDYT)
                if implicitFloats > 0 {
                    let cols = Kernels.Packed.prepareColumns(g0, input: x + n * inputCount, scratch: block + patch * rowStride)
                    Kernels.Packed.columnsTimes(m: patch, n: oc, k: pixels, columns: cols, b: packedDYT, beta: first ? 0 : 1,
                                                c: dWT, ldc: oc)
                } else {
                    Kernels.im2col(g0, input: x + n * inputCount, columns: block, rowStride: rowStride, column0: 0)
                    Kernels.Packed.gemm(m: patch, n: oc, k: pixels, a: .rows(block, ld: rowStride), b: .packed(packedDYT),
                                        beta: first ? 0 : 1, c: dWT, ldc: oc)
                }
                first = false
                guard let dx, let packedGradientWeights, !winogradGradient else { continue }
                if implicitGradientFloats > 0 {
                    // dx_n (C, H*W) = W' (C, OC*K*K) · columns of dY_n padded by K-1-p.
                    let cols = Kernels.Packed.prepareColumns(gradientGeometry, input: dY, scratch: packedDY)
                    Kernels.Packed.convolve(m: c, n: inputCount / c, k: oc * k * k, a: packedGradientWeights, columns: cols, beta: 0,
                                            c: dx + n * inputCount, ldc: inputCount / c)
                    continue
                }
                // dCol_n (CKK, P) = W^T (CKK, OC) · dY_n (OC, P), over the columns.
                Kernels.Packed.packB(transpose: false, dY, ldb: pixels, k: oc, n: pixels, into: packedDY)
                Kernels.Packed.gemm(m: patch, n: pixels, k: oc, a: .packed(packedGradientWeights), b: .packed(packedDY),
                                    beta: 0, c: block, ldc: rowStride)
                let dxn = dx + n * inputCount
                dxn.update(repeating: 0, count: inputCount)
                Kernels.col2imAdd(g0, columns: block, rowStride: rowStride, column0: 0, inputGradient: dxn)
            }
            if let dx, let u = packedGradientWeights, let winogradBlocks {
                // dx (C, H, W) of the group's samples = dY convolved with the flipped kernels.
                Kernels.Packed.winogradConvolve(gradientGeometry, m: c, weights: u, input: dOut + range.lowerBound * outputCount,
                                                samples: range.count, bias: nil, output: dx + range.lowerBound * inputCount,
                                                scratch: winogradBlocks + Kernels.workerSlot * winogradScratchFloats)
            }
        }
        // The groups' partials are added in group order into the first, then turned round into the
        // (OC, CKK) gradient.
        let total = part
        for g in 1..<groups { Vector.add(part + g * partialCount, into: total, patch * oc + oc) }
        let gradient = store.gradients + weight.offset, biasGradient = store.gradients + bias.offset
        Kernels.Packed.addTransposed(total, rows: patch, columns: oc, into: gradient)
        Vector.add(total + patch * oc, into: biasGradient, oc)
        return dx
    }
}
