/// Max pooling over kernel×kernel windows (no padding).
public final class MaxPool2D: Layer {
    public let name: String
    public var inputShape: Shape { pooling.inputShape }
    public var outputShape: Shape { pooling.outputShape }
    let pooling: MaxPooling

    public init(name: String, inputShape: Shape, kernelSize: Int, stride: Int? = nil,
                workspace: GradientWorkspace = GradientWorkspace()) {
        self.name = name
        pooling = MaxPooling(inputShape: inputShape, kernel: kernelSize, stride: stride ?? kernelSize, workspace: workspace)
    }

    public var forwardMultiplyAdds: Int { 0 }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        pooling.forward(x, batch: batch, input: .asIs)
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        needsInputGradient ? pooling.backward(dY, batch: batch) : nil
    }
}

/// The work of a max pooling, for `MaxPool2D` and the fused layers that end in one: each window's
/// maximum and its argmax (the index in the input plane), and the adjoint that sends each output
/// gradient to its argmax.
final class MaxPooling {
    let inputShape: Shape
    let outputShape: Shape
    let kernel: Int
    let stride: Int
    private let output = FloatBuffer()         // (N, C, OH, OW)
    private let workspace: GradientWorkspace   // input gradient (N, C, H, W) goes here
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)   // (N, C, OH, OW)
    private var argmaxCapacity = 1

    /// What the input is to the pooling.
    enum Input {
        /// Any values.
        case asIs
        /// The output of a ReLU: a window whose maximum is not positive is marked (index ~argmax) and
        /// passes no gradient back, which is the ReLU's own gradient mask.
        case rectified
        /// The input of a ReLU, applied here: the output is max(0, maximum), the maximum of the
        /// rectified window, without a pass over the whole input; the gradient is masked as for
        /// `rectified`. 2x2 windows with stride 2 only.
        case rectifiedHere
    }

    init(inputShape: Shape, kernel: Int, stride: Int, workspace: GradientWorkspace) {
        self.inputShape = inputShape
        self.kernel = kernel
        self.stride = stride
        self.workspace = workspace
        outputShape = Shape(channels: inputShape.channels,
                            height: (inputShape.height - kernel) / stride + 1,
                            width: (inputShape.width - kernel) / stride + 1)
    }

    deinit { argmax.deallocate() }

    var isTwoByTwo: Bool { kernel == 2 && stride == 2 }

    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, input: Input) -> UnsafeMutablePointer<Float> {
        let planes = batch * inputShape.channels
        let h = inputShape.height, w = inputShape.width, oh = outputShape.height, ow = outputShape.width
        let y = output.reserve(planes * oh * ow)
        if planes * oh * ow > argmaxCapacity {
            argmax.deallocate()
            argmaxCapacity = planes * oh * ow
            argmax = .allocate(capacity: argmaxCapacity)
        }
        let rectified = input != .asIs, rectify = input == .rectifiedHere
        precondition(!rectify || isTwoByTwo, "only 2x2 pooling applies the ReLU before it")
        if isTwoByTwo {
            // One task per sample.
            let channels = inputShape.channels, inPlane = h * w, outPlane = oh * ow, argmax = argmax
            Kernels.parallelFor(batch) { n in
                let first = n * channels
                Kernels.maxPool2x2(x + first * inPlane, y + first * outPlane, argmax: argmax + first * outPlane,
                                   planes: channels, height: h, width: w, rectified: rectified, rectify: rectify)
            }
            return y
        }
        for plane in 0..<planes {
            poolPlane(x + plane * h * w, into: y + plane * oh * ow, argmax: argmax + plane * oh * ow, rectified: rectified)
        }
        return y
    }

    /// One plane of any window size and stride.
    private func poolPlane(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>,
                           argmax index: UnsafeMutablePointer<Int32>, rectified: Bool) {
        let w = inputShape.width, oh = outputShape.height, ow = outputShape.width
        for oy in 0..<oh {
            for ox in 0..<ow {
                var best = (oy * stride) * w + ox * stride
                var bestValue = source[best]
                for ky in 0..<kernel {
                    let row = (oy * stride + ky) * w + ox * stride
                    for kx in 0..<kernel where source[row + kx] > bestValue {
                        bestValue = source[row + kx]
                        best = row + kx
                    }
                }
                target[oy * ow + ox] = bestValue
                index[oy * ow + ox] = rectified && !(bestValue > 0) ? ~Int32(best) : Int32(best)
            }
        }
    }

    /// The input gradient, in the workspace: dY at each window's argmax, 0 elsewhere.
    func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int) -> UnsafeMutablePointer<Float> {
        let planes = batch * inputShape.channels
        let inPlane = inputShape.height * inputShape.width, outPlane = outputShape.height * outputShape.width
        let dx = workspace.inputGradient(planes * inPlane, avoiding: dY)
        let channels = inputShape.channels, argmax = argmax
        if isTwoByTwo {
            let h = inputShape.height, w = inputShape.width
            Kernels.parallelFor(batch) { n in
                let first = n * channels
                Kernels.maxPool2x2Backward(dY + first * outPlane, argmax: argmax + first * outPlane, dx: dx + first * inPlane,
                                           planes: channels, height: h, width: w)
            }
            return dx
        }
        Kernels.parallelFor(batch) { n in
            (dx + n * channels * inPlane).update(repeating: 0, count: channels * inPlane)
            for plane in (n * channels)..<((n + 1) * channels) {
                let target = dx + plane * inPlane
                let source = dY + plane * outPlane
                let index = argmax + plane * outPlane
                for o in 0..<outPlane where index[o] >= 0 { target[Int(index[o])] += source[o] }
            }
        }
        return dx
    }
}

/// Global average pooling: (N, C, H, W) -> (N, C).
public final class GlobalAveragePool: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape
    private let output = FloatBuffer()
    private let workspace: GradientWorkspace   // input gradient (N, C, H, W) goes here

    public init(name: String, inputShape: Shape, workspace: GradientWorkspace = GradientWorkspace()) {
        self.name = name
        self.workspace = workspace
        self.inputShape = inputShape
        outputShape = .vector(inputShape.channels)
    }

    public var forwardMultiplyAdds: Int { inputShape.count }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        let planes = batch * inputShape.channels, pixels = inputShape.height * inputShape.width
        let y = output.reserve(planes)
        let scale = 1 / Float(pixels)
        for plane in 0..<planes {
            var sum: Float = 0
            let source = x + plane * pixels
            for p in 0..<pixels { sum += source[p] }
            y[plane] = sum * scale
        }
        return y
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard needsInputGradient else { return nil }
        let planes = batch * inputShape.channels, pixels = inputShape.height * inputShape.width
        let dx = workspace.inputGradient(planes * pixels, avoiding: dY)
        let scale = 1 / Float(pixels)
        for plane in 0..<planes {
            (dx + plane * pixels).update(repeating: dY[plane] * scale, count: pixels)
        }
        return dx
    }
}
