import CKernels

// How `Conv2D` computes its three products. For each (forward, weight gradient, input gradient) the
// algorithm is chosen once for the layer's geometry and what the kernel set in use has (Winograd,
// implicit columns: runtime questions to the C table, so no Swift file names an ISA), and kept as an
// object that owns its scratch sizes and its packed weights. A choice depends on the geometry and
// the kernel set alone, never on the batch or the thread count, so the sums do not either.

/// The algorithms of one layer on one kernel set.
///
/// Chosen on a layer's first pass and again whenever the calling thread runs another kernel set
/// (tests switch it per thread with `Kernels.withISA`): what a set has decides the algorithms, and
/// its panel layout decides their packed weights and scratch sizes, so a choice made under one set
/// is no use under another. Choosing on use rather than when the layer is built lets a network built
/// under one set run under another; `isCurrent`, a comparison of the set's name pointer, keeps the
/// check free of allocations. Per-thread scratch is still sized when a pass starts, from the calling
/// thread's thread count (`ThreadBlocks`), which tests also change per thread.
final class ConvolutionAlgorithms {
    let forward: ConvolutionAlgorithm
    let weightGradient: ConvolutionWeightGradient
    let inputGradient: ConvolutionAlgorithm
    /// The kernel set chosen for: its table's name (one pointer per table, as `PackedWeights` compares).
    private let isa = ck_isa()

    init(geometry g: Kernels.ConvGeometry, kernels: ConvolutionKernels) {
        forward = ConvolutionAlgorithms.forward(g, kernels)
        weightGradient = ConvolutionWeightGradient(columns: SampleColumns(g), outputs: kernels.outputs)
        inputGradient = ConvolutionAlgorithms.inputGradient(g, kernels)
    }

    /// Whether the calling thread runs the kernel set these were chosen for.
    var isCurrent: Bool { isa == ck_isa() }

    /// Winograd where it applies (`Kernels.Packed.winogradApplies`), else a GEMM over the columns.
    private static func forward(_ g: Kernels.ConvGeometry, _ kernels: ConvolutionKernels) -> ConvolutionAlgorithm {
        if Kernels.Packed.winogradApplies(g, outputs: kernels.outputs) {
            return WinogradConvolution(g, outputs: kernels.outputs, weights: PackedKernels(kernels, .winograd(adjoint: false)))
        }
        return ColumnsConvolution(SampleColumns(g), outputs: kernels.outputs, weights: PackedKernels(kernels, .layer))
    }

    /// The input gradient of a stride-1 convolution is itself a convolution, of dY padded by K-1-p
    /// with the kernels flipped and input/output channels swapped (W'): Winograd where it applies,
    /// else a GEMM over dY's implicit columns straight into dx, with no column matrix and no col2im.
    /// Other layers, and those the implicit columns do not pay for, take the transposed convolution.
    private static func inputGradient(_ g: Kernels.ConvGeometry, _ kernels: ConvolutionKernels) -> ConvolutionAlgorithm {
        let k = g.kernel
        guard g.stride == 1, g.padding < k else { return TransposedConvolution(g, kernels) }
        let dY = Kernels.ConvGeometry(channels: kernels.outputs, height: g.outputHeight, width: g.outputWidth,
                                      kernel: k, stride: 1, padding: k - 1 - g.padding)
        if Kernels.Packed.winogradApplies(dY, outputs: g.channels) {
            return WinogradConvolution(dY, outputs: g.channels, weights: PackedKernels(kernels, .winograd(adjoint: true)))
        }
        // The implicit columns only where they cost no more multiply-adds than the columns: a
        // convolution that keeps the size (a valid one's input gradient would multiply its dY's zero border too).
        let columns = SampleColumns(dY)
        if g.height * g.width <= g.outputPixels, columns.isImplicit {
            return ColumnsConvolution(columns, outputs: g.channels, weights: PackedKernels(kernels, .flipped))
        }
        return TransposedConvolution(g, kernels)
    }
}

/// A convolution over a run of samples: output (n, M, OH, OW) from input (n, C, H, W) (+ bias). A
/// layer's forward pass is one (its weights W, its bias), its input gradient another (from dY).
protocol ConvolutionAlgorithm: AnyObject {
    /// Floats of one thread's scratch: a multiple of 16, so blocks laid end to end stay 64-byte aligned.
    var scratchFloats: Int { get }
    /// Whether a backward pass gives it a group's samples in one call (Winograd: its tiles run across
    /// samples) rather than each sample right after that sample's weight gradient, while its dY is in cache.
    var takesWholeGroups: Bool { get }
    /// The weights as it multiplies them, packed (again only when the parameters have changed):
    /// once per pass, before the parallel loop.
    func packedWeights() -> UnsafePointer<Float>
    /// Samples `samples` of output from those of input, in one thread's scratch.
    func convolve(_ input: UnsafePointer<Float>, samples: Range<Int>, weights: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>)
}

/// Winograd F(2x2, KxK), for a 3x3 or 5x5 stride-1 geometry where the kernel set has it and the
/// channels make it pay: each call transforms all the samples it is given together.
final class WinogradConvolution: ConvolutionAlgorithm {
    let geometry: Kernels.ConvGeometry   // of the input: x, or dY for an input gradient
    let outputs: Int
    let weights: PackedKernels           // U (α², outputs, channels) packed, α = K+1
    let scratchFloats: Int               // V (α², C, tiles) and M (α², outputs, tiles) of a chunk
    var takesWholeGroups: Bool { true }

    init(_ geometry: Kernels.ConvGeometry, outputs: Int, weights: PackedKernels) {
        self.geometry = geometry
        self.outputs = outputs
        self.weights = weights
        scratchFloats = Kernels.Packed.winogradScratchFloats(geometry, m: outputs)
    }

    func packedWeights() -> UnsafePointer<Float> { weights.current() }

    func convolve(_ input: UnsafePointer<Float>, samples: Range<Int>, weights u: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let g = geometry, inputCount = g.channels * g.height * g.width, outputCount = outputs * g.outputPixels
        Kernels.Packed.winogradConvolve(g, m: outputs, weights: u, input: input + samples.lowerBound * inputCount,
                                        samples: samples.count, bias: bias, output: output + samples.lowerBound * outputCount,
                                        scratch: scratch)
    }
}

/// Y_n (M, P) = A (M, CKK) · col_n (CKK, P) (+ bias), one GEMM per sample straight into the NCHW
/// output, A packed once and the columns read in place: the forward pass (A = W), or a stride-1 input
/// gradient over dY's implicit columns (A = W').
final class ColumnsConvolution: ConvolutionAlgorithm {
    let columns: SampleColumns
    let outputs: Int
    let weights: PackedKernels
    var scratchFloats: Int { columns.scratchFloats }
    var takesWholeGroups: Bool { false }

    init(_ columns: SampleColumns, outputs: Int, weights: PackedKernels) {
        self.columns = columns
        self.outputs = outputs
        self.weights = weights
    }

    func packedWeights() -> UnsafePointer<Float> { weights.current() }

    func convolve(_ input: UnsafePointer<Float>, samples: Range<Int>, weights a: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let g = columns.geometry, pixels = g.outputPixels, inputCount = g.channels * g.height * g.width
        for n in samples {
            let y = output + n * outputs * pixels
            if let bias { for o in 0..<outputs { (y + o * pixels).update(repeating: bias[o], count: pixels) } }
            columns.packedTimesColumns(a, m: outputs, of: input + n * inputCount, beta: bias == nil ? 0 : 1, into: y,
                                       scratch: scratch)
        }
    }
}

/// The input gradient through the column matrix, for any stride: dCol_n (CKK, P) = W^T (CKK, OC) ·
/// dY_n (OC, P), W^T packed once and dY_n packed per sample, then col2im adds dCol_n into dx_n.
final class TransposedConvolution: ConvolutionAlgorithm {
    let geometry: Kernels.ConvGeometry   // the layer's: dx is its input, dY its output
    let outputs: Int                     // the layer's output channels
    let weights: PackedKernels
    let rowStride: Int                   // dCol's rows, 64-byte aligned
    private let packedFloats: Int        // one sample's dY packed
    var scratchFloats: Int { geometry.patchSize * rowStride + packedFloats }
    var takesWholeGroups: Bool { false }

    init(_ geometry: Kernels.ConvGeometry, _ kernels: ConvolutionKernels) {
        self.geometry = geometry
        outputs = kernels.outputs
        weights = PackedKernels(kernels, .transposed)
        rowStride = (geometry.outputPixels + 15) / 16 * 16
        packedFloats = Kernels.Packed.bFloats(k: kernels.outputs, n: geometry.outputPixels)
    }

    func packedWeights() -> UnsafePointer<Float> { weights.current() }

    func convolve(_ input: UnsafePointer<Float>, samples: Range<Int>, weights wT: UnsafePointer<Float>,
                  bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let g = geometry, pixels = g.outputPixels, patch = g.patchSize, inputCount = g.channels * g.height * g.width
        let dCol = scratch, packedDY = scratch + patch * rowStride
        for n in samples {
            let dY = input + n * outputs * pixels
            Kernels.Packed.packB(transpose: false, dY, ldb: pixels, k: outputs, n: pixels, into: packedDY)
            Kernels.Packed.gemm(m: patch, n: pixels, k: outputs, a: .packed(wT), b: .packed(packedDY), beta: 0, c: dCol,
                                ldc: rowStride)
            let dx = output + n * inputCount
            dx.update(repeating: 0, count: inputCount)
            Kernels.col2imAdd(g, columns: dCol, rowStride: rowStride, column0: 0, inputGradient: dx)
        }
    }
}

/// dW and db of a batch. Each group of samples sums a partial of its own, transposed: dW^T (CKK, OC)
/// = Σ col_n (CKK, P) · dY_n^T (P, OC), the columns (the big operand) read in place and each
/// sample's dY^T packed, and db = Σ the rows of dY_n. The partials are added in group order and
/// turned round once, so the sums do not depend on the thread count.
final class ConvolutionWeightGradient {
    let columns: SampleColumns
    let outputs: Int
    private let packedFloats: Int    // one sample's dY^T packed
    private let partialFloats: Int   // dW^T and db of a group, rounded up to 16
    private let partials = FloatBuffer()   // (G, CKK*OC + OC): dW^T (CKK, OC) then db (OC) per group
    var scratchFloats: Int { columns.scratchFloats + packedFloats }

    init(columns: SampleColumns, outputs: Int) {
        self.columns = columns
        self.outputs = outputs
        packedFloats = Kernels.Packed.bFloats(k: columns.geometry.outputPixels, n: outputs)
        partialFloats = (columns.geometry.patchSize * outputs + outputs + 15) / 16 * 16
    }

    /// Room for the groups' partials; before the parallel loop.
    func reserve(groups: Int) { partials.reserve(groups * partialFloats) }

    /// Adds sample n into group g's partial; the group's first sample overwrites it.
    func add(sample n: Int, input x: UnsafePointer<Float>, outputGradient dOut: UnsafePointer<Float>, group g: Int,
             first: Bool, scratch: UnsafeMutablePointer<Float>) {
        let geometry = columns.geometry, pixels = geometry.outputPixels, patch = geometry.patchSize
        let dWT = partials.pointer + g * partialFloats, db = dWT + patch * outputs
        let dY = dOut + n * outputs * pixels, packedDYT = scratch + columns.scratchFloats
        if first { db.update(repeating: 0, count: outputs) }
        for o in 0..<outputs { db[o] += Vector.sum(dY + o * pixels, pixels) }
        // dW^T_g (CKK, OC) += col_n (CKK, P) · dY_n^T (P, OC); the columns are rebuilt, not kept.
        Kernels.Packed.packB(transpose: true, dY, ldb: pixels, k: pixels, n: outputs, into: packedDYT)
        columns.columnsTimesPacked(of: x + n * geometry.channels * geometry.height * geometry.width, packedDYT, n: outputs,
                                   beta: first ? 0 : 1, into: dWT, scratch: scratch)
    }

    /// Adds the groups' partials in group order into the first, then the total, turned round into
    /// (OC, CKK), into the gradient arena.
    func finish(groups: Int, weightGradient: UnsafeMutablePointer<Float>, biasGradient: UnsafeMutablePointer<Float>) {
        let patch = columns.geometry.patchSize, total = partials.pointer
        for g in 1..<groups { Vector.add(total + g * partialFloats, into: total, patch * outputs + outputs) }
        Kernels.Packed.addTransposed(total, rows: patch, columns: outputs, into: weightGradient)
        Vector.add(total + patch * outputs, into: biasGradient, outputs)
    }
}

/// One sample's columns (CKK, P) as a GEMM operand, in one thread's scratch: implicit (a padded copy
/// of the sample and offset tables) where the kernel set has them for the geometry, else explicit
/// (im2col, rows rounded up to 16 floats so that each stays 64-byte aligned).
struct SampleColumns {
    let geometry: Kernels.ConvGeometry
    /// Scratch floats of the implicit columns; 0: explicit ones.
    private let implicitFloats: Int
    private let rowStride: Int

    init(_ geometry: Kernels.ConvGeometry) {
        self.geometry = geometry
        implicitFloats = Kernels.Packed.columnsFloats(geometry)
        rowStride = (geometry.outputPixels + 15) / 16 * 16
    }

    var isImplicit: Bool { implicitFloats > 0 }
    var scratchFloats: Int { isImplicit ? implicitFloats : geometry.patchSize * rowStride }

    /// C (m, P) = A (m, CKK) · the columns of `sample` + beta * C, A packed.
    func packedTimesColumns(_ a: UnsafePointer<Float>, m: Int, of sample: UnsafePointer<Float>, beta: Float,
                            into c: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let g = geometry, pixels = g.outputPixels
        if isImplicit {
            let columns = Kernels.Packed.prepareColumns(g, input: sample, scratch: scratch)
            Kernels.Packed.convolve(m: m, n: pixels, k: g.patchSize, a: a, columns: columns, beta: beta, c: c, ldc: pixels)
            return
        }
        Kernels.im2col(g, input: sample, columns: scratch, rowStride: rowStride, column0: 0)
        Kernels.Packed.gemm(m: m, n: pixels, k: g.patchSize, a: .packed(a), b: .rows(scratch, ld: rowStride), beta: beta,
                            c: c, ldc: pixels)
    }

    /// C (CKK, n) = the columns of `sample` · B (P, n) + beta * C, B packed.
    func columnsTimesPacked(of sample: UnsafePointer<Float>, _ b: UnsafePointer<Float>, n: Int, beta: Float,
                            into c: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let g = geometry, pixels = g.outputPixels
        if isImplicit {
            let columns = Kernels.Packed.prepareColumns(g, input: sample, scratch: scratch)
            Kernels.Packed.columnsTimes(m: g.patchSize, n: n, k: pixels, columns: columns, b: b, beta: beta, c: c, ldc: n)
            return
        }
        Kernels.im2col(g, input: sample, columns: scratch, rowStride: rowStride, column0: 0)
        Kernels.Packed.gemm(m: g.patchSize, n: n, k: pixels, a: .rows(scratch, ld: rowStride), b: .packed(b), beta: beta,
                            c: c, ldc: n)
    }
}

/// A layer's kernels W (OC, C, K, K), where they live in the parameter arena.
struct ConvolutionKernels {
    let store: ParameterStore
    let weight: ArenaSlice
    let outputs: Int
    let inputs: Int
    let size: Int
}

/// The layer's kernels arranged and packed as one algorithm multiplies them, for the kernel set in
/// use; packed again only when the parameters have changed (`PackedWeights`).
final class PackedKernels {
    enum Arrangement {
        /// W as (OC, C*K*K): the forward pass over columns.
        case layer
        /// W' (C, OC*K*K), W'[c][(o*K + ky)*K + kx] = W[o][c][K-1-ky][K-1-kx]: dY's convolution giving dx.
        case flipped
        /// W^T (C*K*K, OC): the product with dY giving dx's columns.
        case transposed
        /// W transformed for Winograd: the layer, or (adjoint) the convolution giving its input gradient.
        case winograd(adjoint: Bool)
    }

    let kernels: ConvolutionKernels
    let arrangement: Arrangement
    private let packed = PackedWeights()
    private let flipped = FloatBuffer()   // W' (C, OC*K*K) before packing
    private let floats: Int

    init(_ kernels: ConvolutionKernels, _ arrangement: Arrangement) {
        self.kernels = kernels
        self.arrangement = arrangement
        let oc = kernels.outputs, c = kernels.inputs, kk = kernels.size * kernels.size
        switch arrangement {
        case .layer: floats = Kernels.Packed.aFloats(m: oc, k: c * kk)
        case .flipped: floats = Kernels.Packed.aFloats(m: c, k: oc * kk)
        case .transposed: floats = Kernels.Packed.aFloats(m: c * kk, k: oc)
        case .winograd(let adjoint):
            floats = Kernels.Packed.winogradWeightsFloats(m: adjoint ? c : oc, k: adjoint ? oc : c, kernel: kernels.size)
        }
    }

    func current() -> UnsafePointer<Float> {
        packed.current(kernels.store, floats: floats) { pack(into: $0) }
    }

    private func pack(into out: UnsafeMutablePointer<Float>) {
        let w = kernels.store.parameters + kernels.weight.offset
        let oc = kernels.outputs, c = kernels.inputs, k = kernels.size, patch = c * k * k
        switch arrangement {
        case .layer: Kernels.Packed.packA(transpose: false, w, lda: patch, m: oc, k: patch, into: out)
        case .transposed: Kernels.Packed.packA(transpose: true, w, lda: patch, m: patch, k: oc, into: out)
        case .winograd(let adjoint):
            Kernels.Packed.winogradWeights(w, outputChannels: oc, inputChannels: c, kernel: k, adjoint: adjoint, into: out)
        case .flipped:
            let kk = k * k, rowLength = oc * kk, target = flipped.reserve(c * rowLength)
            for ci in 0..<c {
                for o in 0..<oc {
                    let source = w + (o * c + ci) * kk, row = target + ci * rowLength + o * kk
                    for t in 0..<kk { row[t] = source[kk - 1 - t] }
                }
            }
            Kernels.Packed.packA(transpose: false, target, lda: rowLength, m: c, k: rowLength, into: out)
        }
    }
}

/// The samples of a batch cut into at most `Conv2D.maximumGroups` nearly equal runs that run in
/// parallel: the cut depends on the batch alone, not on the thread count.
struct SampleGroups {
    let batch: Int
    let count: Int

    init(batch: Int) {
        self.batch = batch
        count = min(batch, Conv2D.maximumGroups)
    }

    /// Samples [start, end) of group g.
    @inline(__always)
    func samples(of g: Int) -> Range<Int> { (g * batch / count)..<((g + 1) * batch / count) }
}

/// One scratch block per kernel thread, end to end, sized when a pass starts from the calling
/// thread's thread count (tests change it per thread). One block per thread, not per group: a
/// thread's block stays in its L2 across samples.
struct ThreadBlocks {
    let first: UnsafeMutablePointer<Float>
    let floats: Int

    init(in buffer: FloatBuffer, floats: Int) {
        first = buffer.reserve(Kernels.threads * floats)
        self.floats = floats
    }

    /// The block of the kernel thread running the caller.
    var own: UnsafeMutablePointer<Float> { first + Kernels.workerSlot * floats }
}
