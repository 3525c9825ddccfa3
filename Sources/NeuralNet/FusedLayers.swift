/// BatchNorm then ReLU, built by `LayerFusion` for `bn-relu`: the normalising pass clamps at zero
/// (no second pass over the data), backward masks the gradient and runs BatchNorm's. The same bits
/// as the two layers.
final class BatchNormReLU: Layer {
    let name: String
    let norm: BatchNorm
    private var lastOutput: UnsafeMutablePointer<Float>?

    init(_ norm: BatchNorm, _ relu: ReLU) {
        self.norm = norm
        name = norm.name + "+" + relu.name
    }

    var inputShape: Shape { norm.inputShape }
    var outputShape: Shape { norm.outputShape }
    var forwardMultiplyAdds: Int { norm.forwardMultiplyAdds }

    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        let y = norm.normalize(x, batch: batch, context: context, rectify: true)
        lastOutput = y
        return y
    }

    func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard let y = lastOutput else { preconditionFailure("\(name): backward before forward") }
        ReLU.maskGradient(dY, output: y, count: batch * outputShape.count)
        return norm.backward(dY, batch: batch, needsInputGradient: needsInputGradient)
    }
}

/// ReLU then max pooling, built by `LayerFusion` for `relu-poolK`: the pooling masks the
/// gradient through its argmax (a window whose maximum is not positive passes nothing back), and a
/// 2x2 pooling applies the ReLU to each window's maximum instead of a pass over the whole input.
/// The same bits as the two layers.
final class ReLUMaxPool2D: Layer {
    let name: String
    let relu: ReLU
    let pooling: MaxPooling

    init(_ relu: ReLU, _ pool: MaxPool2D) {
        self.relu = relu
        pooling = pool.pooling
        name = relu.name + "+" + pool.name
    }

    var inputShape: Shape { pooling.inputShape }
    var outputShape: Shape { pooling.outputShape }
    var forwardMultiplyAdds: Int { 0 }

    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        if pooling.isTwoByTwo { return pooling.forward(x, batch: batch, input: .rectifiedHere) }
        ReLU.rectify(x, count: batch * inputShape.count)
        return pooling.forward(x, batch: batch, input: .rectified)
    }

    func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        needsInputGradient ? pooling.backward(dY, batch: batch) : nil
    }
}
