/// A model built from a `ModelSpec`: its layers in order, over one `ParameterStore`.
public final class Network {
    public let spec: ModelSpec
    public let store: ParameterStore
    public let layers: [Layer]
    private let logitGradient = FloatBuffer()   // (N, 10)

    public init(spec: ModelSpec, seed: UInt64) {
        self.spec = spec
        let store = ParameterStore()
        var layers = [Layer]()
        var shape = ModelSpec.inputShape
        for (index, layerSpec) in spec.layers.enumerated() {
            let name = "layers.\(index)"
            let layer: Layer
            switch layerSpec {
            case .conv(let c, let k, let s, let p):
                layer = Conv2D(name: name, inputShape: shape, outputChannels: c, kernelSize: k, stride: s, padding: p, store: store)
            case .batchNorm: layer = BatchNorm(name: name, inputShape: shape, store: store)
            case .relu: layer = ReLU(name: name, inputShape: shape)
            case .maxPool(let k, let s): layer = MaxPool2D(name: name, inputShape: shape, kernelSize: k, stride: s)
            case .globalAveragePool: layer = GlobalAveragePool(name: name, inputShape: shape)
            case .flatten: layer = Flatten(name: name, inputShape: shape)
            case .dense(let o): layer = Dense(name: name, inputShape: shape, outputs: o, store: store)
            case .dropout(let r): layer = Dropout(name: name, inputShape: shape, rate: r, layerIndex: index)
            }
            layers.append(layer)
            shape = layer.outputShape
        }
        store.seal(seed: seed)
        self.store = store
        self.layers = layers
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
    public func backward(_ dLogits: UnsafeMutablePointer<Float>, batch: Int) {
        var g = dLogits
        for index in stride(from: layers.count - 1, through: 0, by: -1) {
            guard let next = layers[index].backward(g, batch: batch, needsInputGradient: index > 0) else { break }
            g = next
        }
    }

    /// One forward, loss and backward on a batch: gradients of the mean loss over
    /// `gradientDenominator` samples (the batch, or the global batch across ranks) are ADDED
    /// to the store's gradient arena. Returns this batch's loss sum and correct count.
    public func accumulateGradients(input: UnsafeMutablePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int,
                                    context: PassContext, gradientDenominator: Int? = nil) -> SoftmaxCrossEntropy.Result {
        let logits = forward(input, batch: batch, context: context)
        let dLogits = logitGradient.reserve(batch * classes)
        let result = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, classes: classes,
                                                  gradient: dLogits, gradientScale: 1 / Float(gradientDenominator ?? batch))
        backward(dLogits, batch: batch)
        return result
    }
}
