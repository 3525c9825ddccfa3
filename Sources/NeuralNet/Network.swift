/// A model built from a `ModelSpec`: its layers in order, over one `ParameterStore`.
public final class Network {
    public let spec: ModelSpec
    public let store: ParameterStore
    /// The layers that run: the spec's, each group `LayerFusion` chose built as one fused layer.
    public let layers: [Layer]
    /// Each layer's slice of the parameter (and gradient) arena, empty for layers without parameters.
    public let parameterRanges: [Range<Int>]
    /// Each layer's indices in `spec.layers`: one, or the group fused into it.
    public let specLayerRanges: [Range<Int>]
    /// Activation values of one image: the input and every spec layer's output (for memory estimates).
    public let activationValuesPerImage: Int
    private let logitGradient = FloatBuffer()   // (N, classes)

    /// The spec's layers, built in order (their parameters and buffers named `layers.<index>.…`
    /// in the store), then grouped as `LayerFusion` rewrites them.
    public init(spec: ModelSpec, seed: UInt64, fusions: LayerFusions = .all) {
        self.spec = spec
        let store = ParameterStore()
        let workspace = GradientWorkspace()
        var layers = [Layer]()
        var ranges = [Range<Int>]()
        var specRanges = [Range<Int>]()
        var shape = spec.input
        var activations = shape.count
        for group in LayerFusion.groups(spec.layers, fusions: fusions) {
            let before = store.parameterCount
            var parts = [Layer]()
            for index in group.layers {
                let writesOverInput = LayerFusion.batchNormWritesOverInput(at: index, in: spec.layers)
                parts.append(spec.layers[index].makeLayer(index: index, inputShape: shape, writesOverInput: writesOverInput,
                                                          store: store, workspace: workspace))
                shape = parts[parts.count - 1].outputShape
                activations += shape.count
            }
            layers.append(Network.fuse(parts, as: group.kind))
            ranges.append(before..<store.parameterCount)
            specRanges.append(group.layers)
        }
        store.seal(seed: seed)
        self.store = store
        self.layers = layers
        parameterRanges = ranges
        specLayerRanges = specRanges
        activationValuesPerImage = activations
    }

    /// The layer a group of built layers runs as (`LayerFusion` chose the group from their specs).
    private static func fuse(_ parts: [Layer], as kind: LayerGroup.Kind) -> Layer {
        switch (kind, parts.count) {
        case (.batchNormReLU, 2):
            if let norm = parts[0] as? BatchNorm, let relu = parts[1] as? ReLU { return BatchNormReLU(norm, relu) }
        case (.reluMaxPool, 2):
            if let relu = parts[0] as? ReLU, let pool = parts[1] as? MaxPool2D { return ReLUMaxPool2D(relu, pool) }
        case (.batchNormReLUMaxPool(let onePass), 3):
            if let norm = parts[0] as? BatchNorm, let relu = parts[1] as? ReLU, let pool = parts[2] as? MaxPool2D {
                return BatchNormReLUMaxPool2D(norm, relu, pool, onePass: onePass)
            }
        case (.single, 1): return parts[0]
        default: break
        }
        preconditionFailure("LayerFusion grouped \(parts.map(\.name)) as \(kind)")
    }

    public var parameterCount: Int { store.parameterCount }
    public var classes: Int { spec.classes }

    /// Multiply-adds of one image's forward pass.
    public var forwardMultiplyAdds: Int { layers.reduce(0) { $0 + $1.forwardMultiplyAdds } }

    /// Runs the layers in order; returns the logits (N, classes), valid until the next forward.
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
                                    context: PassContext, gradientDenominator: Int? = nil, labelSmoothing: Float = 0,
                                    layerDone: ((Int) -> Void)? = nil, progress: (() -> Void)? = nil) -> SoftmaxCrossEntropy.Result {
        let logits = forward(input, batch: batch, context: context)
        let dLogits = logitGradient.reserve(batch * classes)
        let result = SoftmaxCrossEntropy.evaluate(logits: logits, labels: labels, batch: batch, classes: classes,
                                                  gradient: dLogits, gradientScale: 1 / Float(gradientDenominator ?? batch),
                                                  labelSmoothing: labelSmoothing)
        backward(dLogits, batch: batch, layerDone: layerDone, progress: progress)
        return result
    }
}
