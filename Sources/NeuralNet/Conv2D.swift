/// 2-D convolution. The batch is cut into a fixed number of groups that run in parallel; the
/// algorithms (Winograd, a GEMM over implicit or explicit columns, the transposed convolution) are
/// chosen for the layer's geometry and the kernel set in use (`ConvolutionAlgorithms`). The weight
/// gradient's group partials are added in group order, so results do not depend on the thread count.
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

    private var chosen: ConvolutionAlgorithms?  // for the kernel set of the last pass
    private let scratch = FloatBuffer()         // one block per thread, for the pass running
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

    /// The algorithms for the calling thread's kernel set: chosen on the first pass, and again only
    /// when the set has changed since (see `ConvolutionAlgorithms`).
    func algorithms() -> ConvolutionAlgorithms {
        if let chosen, chosen.isCurrent { return chosen }
        let kernels = ConvolutionKernels(store: store, weight: weight, outputs: outputShape.channels,
                                         inputs: inputShape.channels, size: geometry.kernel)
        let algorithms = ConvolutionAlgorithms(geometry: geometry, kernels: kernels)
        chosen = algorithms
        return algorithms
    }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        input = x
        let algorithm = algorithms().forward, groups = SampleGroups(batch: batch)
        let w = algorithm.packedWeights()   // once for the whole batch
        let blocks = ThreadBlocks(in: scratch, floats: algorithm.scratchFloats)
        let out = output.reserve(batch * outputShape.count), b = store.parameters + bias.offset
        Kernels.parallelFor(groups.count) { g in
            algorithm.convolve(x, samples: groups.samples(of: g), weights: w, bias: b, output: out, scratch: blocks.own)
        }
        return out
    }

    /// Each group adds its samples' weight gradients into a partial of its own, and (when asked for)
    /// computes their input gradients: sample by sample, or the whole group after them (Winograd).
    public func backward(_ dOut: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard let x = input else { preconditionFailure("\(name): backward before forward") }
        let algorithms = algorithms(), groups = SampleGroups(batch: batch), progress = backwardProgress
        let weightGradient = algorithms.weightGradient, inputGradient = algorithms.inputGradient
        let dx = needsInputGradient ? workspace.inputGradient(batch * inputShape.count, avoiding: dOut) : nil
        let wT = needsInputGradient ? inputGradient.packedWeights() : nil   // once for the whole batch
        // A thread's block: the weight gradient's scratch, then the input gradient's.
        let ownFloats = weightGradient.scratchFloats
        let blocks = ThreadBlocks(in: scratch, floats: ownFloats + (needsInputGradient ? inputGradient.scratchFloats : 0))
        weightGradient.reserve(groups: groups.count)
        Kernels.parallelFor(groups.count) { g in
            let block = blocks.own, range = groups.samples(of: g)
            for n in range {
                if let progress, Kernels.workerSlot == 0 { progress() }
                weightGradient.add(sample: n, input: x, outputGradient: dOut, group: g, first: n == range.lowerBound,
                                   scratch: block)
                guard let dx, let wT, !inputGradient.takesWholeGroups else { continue }
                inputGradient.convolve(dOut, samples: n..<(n + 1), weights: wT, bias: nil, output: dx, scratch: block + ownFloats)
            }
            guard let dx, let wT, inputGradient.takesWholeGroups else { return }
            inputGradient.convolve(dOut, samples: range, weights: wT, bias: nil, output: dx, scratch: block + ownFloats)
        }
        weightGradient.finish(groups: groups.count, weightGradient: store.gradients + weight.offset,
                              biasGradient: store.gradients + bias.offset)
        return dx
    }
}
