/// A model built from a `ModelSpec`: its layers in order, over one `ParameterStore`.
public final class Network {
    public let spec: ModelSpec
    public let store: ParameterStore
    public let layers: [Layer]
    /// Each layer's slice of the parameter (and gradient) arena, empty for layers without parameters.
    public let parameterRanges: [Range<Int>]
    private let logitGradient = FloatBuffer()   // (N, 10)

    public init(spec: ModelSpec, seed: UInt64) {
        self.spec = spec
        let store = ParameterStore()
        let workspace = GradientWorkspace()
        var layers = [Layer]()
        var ranges = [Range<Int>]()
        var shape = ModelSpec.inputShape
        for (index, layerSpec) in spec.layers.enumerated() {
            let name = "layers.\(index)"
            let before = store.parameterCount
            let layer: Layer
            switch layerSpec {
            case .conv(let c, let k, let s, let p):
                layer = Conv2D(name: name, inputShape: shape, outputChannels: c, kernelSize: k, stride: s, padding: p,
                               store: store, workspace: workspace)
            case .batchNorm:
                let norm = BatchNorm(name: name, inputShape: shape, store: store)
                norm.writesOutputInPlace = layers.last is Conv2D || layers.last is Dense
                layer = norm
            case .relu: layer = ReLU(name: name, inputShape: shape)
            case .maxPool(let k, let s):
                layer = MaxPool2D(name: name, inputShape: shape, kernelSize: k, stride: s, workspace: workspace)
            case .globalAveragePool: layer = GlobalAveragePool(name: name, inputShape: shape, workspace: workspace)
            case .flatten: layer = Flatten(name: name, inputShape: shape)
            case .dense(let o): layer = Dense(name: name, inputShape: shape, outputs: o, store: store, workspace: workspace)
            case .dropout(let r): layer = Dropout(name: name, inputShape: shape, rate: r, layerIndex: index)
            }
            layers.append(layer)
            ranges.append(before..<store.parameterCount)
            shape = layer.outputShape
        }
        // A ReLU right after a BatchNorm runs inside BatchNorm's normalising pass.
        for (norm, relu) in zip(layers, layers.dropFirst()) {
            guard let norm = norm as? BatchNorm, let relu = relu as? ReLU else { continue }
            norm.rectifiesOutput = true
            relu.inputIsRectified = true
        }
        // A max pooling right after a ReLU applies the ReLU's gradient mask in its own backward pass.
        for (relu, pool) in zip(layers, layers.dropFirst()) {
            guard let relu = relu as? ReLU, let pool = pool as? MaxPool2D else { continue }
            relu.gradientMaskedByNext = true
            pool.inputIsRectified = true
            // A ReLU with work left (not already run by a BatchNorm) goes into a 2x2 pooling's pass.
            if !relu.inputIsRectified && pool.kernel == 2 && pool.stride == 2 {
                relu.appliedByNext = true
                pool.rectifiesInput = true
            }
        }
        // conv → bn → relu → pool2: the batch norm runs all three in one pass (see `fusesReLUAndPooling`).
        for index in layers.indices.dropLast(2) {
            guard let norm = layers[index] as? BatchNorm, norm.writesOutputInPlace, let relu = layers[index + 1] as? ReLU,
                  let pool = layers[index + 2] as? MaxPool2D, pool.kernel == 2, pool.stride == 2,
                  norm.inputShape.height >= 2, norm.inputShape.width >= 2 else { continue }
            norm.fusesReLUAndPooling = true
            relu.fusedIntoPrevious = true
            pool.fusedIntoPrevious = true
        }
        store.seal(seed: seed)
        self.store = store
        self.layers = layers
        parameterRanges = ranges
    }

    public var parameterCount: Int { store.parameterCount }
    public var classes: Int { ModelSpec.classes }

    /// Multiply-adds of one image's forward pass.
    public var forwardMultiplyAdds: Int { layers.reduce(0) { $0 + $1.forwardMultiplyAdds } }

    /// Runs the layers in order; returns the logits (N, 10), valid until the next forward.
    public func forward(_ input: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        var x = input
        for layer in layers { x = layer.forward(x, batch: batch, context: context) }
        return x
    }

    /// Backward walks the layers in reverse, each adding into its slice of the gradient arena.
    /// `layerDone(i)` runs as soon as layer i's parameter gradients are final (to start sending them).
    /// `progress`, when given, is also called by convolutions between samples of their backward pass
    /// (on the calling thread only), so that reductions started for later layers keep moving.
    public func backward(_ dLogits: UnsafeMutablePointer<Float>, batch: Int, layerDone: ((Int) -> Void)? = nil,
                         progress: (() -> Void)? = nil) {
        let convolutions = layers.compactMap { $0 as? Conv2D }
        for conv in convolutions { conv.backwardProgress = progress }
        defer { for conv in convolutions { conv.backwardProgress = nil } }
        var g: UnsafeMutablePointer<Float>? = dLogits
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            if let input = g { g = layers[index].backward(input, batch: batch, needsInputGradient: index > 0) }
            layerDone?(index)
        }
    }

    /// One forward, loss and backward on a batch: gradients of the mean loss over
    /// `gradientDenominator` samples (the batch, or the global batch across ranks) are ADDED
    /// to the store's gradient arena. Returns this batch's loss sum and correct count.
    public func accumulateGradients(input: UnsafeMutablePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int,
                                    context: PassContext, gradientDenominator: Int? = nil,
                                    layerDone: ((Int) -> Void)? = nil, progress: (() -> Void)? = nil) -> SoftmaxCrossEntropy.Result {
        let logits = forward(input, batch: batch, context: context)
        let dLogits = logitGradient.reserve(batch * classes)
        let result = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, classes: classes,
                                                  gradient: dLogits, gradientScale: 1 / Float(gradientDenominator ?? batch))
        backward(dLogits, batch: batch, layerDone: layerDone, progress: progress)
        return result
    }
}
