/// Max pooling over kernel×kernel windows (no padding); remembers each window's argmax.
public final class MaxPool2D: Layer {
    public let name: String
    public let inputShape: Shape
    public let outputShape: Shape
    let kernel: Int
    let stride: Int
    private let output = FloatBuffer()         // (N, C, OH, OW)
    private let workspace: GradientWorkspace   // input gradient (N, C, H, W) goes here
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)   // (N, C, OH, OW): index in the input plane
    private var argmaxCapacity = 1

    public init(name: String, inputShape: Shape, kernelSize: Int, stride: Int? = nil,
                workspace: GradientWorkspace = GradientWorkspace()) {
        self.name = name
        self.workspace = workspace
        self.inputShape = inputShape
        kernel = kernelSize
        self.stride = stride ?? kernelSize
        outputShape = Shape(channels: inputShape.channels,
                            height: (inputShape.height - kernelSize) / self.stride + 1,
                            width: (inputShape.width - kernelSize) / self.stride + 1)
    }

    deinit { argmax.deallocate() }

    /// True when the input came out of a ReLU (the network sets this together with that ReLU's
    /// `gradientMaskedByNext`): forward marks windows whose maximum is not positive (index ~argmax), and
    /// backward passes them nothing, which is the ReLU's own gradient mask.
    public var inputIsRectified = false

    /// True when the ReLU before leaves its work to this layer (its `appliedByNext`; 2x2 windows,
    /// stride 2): forward pools the unrectified input and outputs max(0, maximum), which is the
    /// maximum of the rectified window, without a pass over the whole input. Implies `inputIsRectified`.
    public var rectifiesInput = false

    /// True when the BatchNorm two layers before pools inside its own passes (its
    /// `fusesReLUAndPooling`): this layer then passes values and gradients through.
    public var fusedIntoPrevious = false

    public var forwardMultiplyAdds: Int { 0 }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        if fusedIntoPrevious { return x }
        let planes = batch * inputShape.channels
        let h = inputShape.height, w = inputShape.width, oh = outputShape.height, ow = outputShape.width
        let y = output.reserve(planes * oh * ow)
        if planes * oh * ow > argmaxCapacity {
            argmax.deallocate()
            argmaxCapacity = planes * oh * ow
            argmax = .allocate(capacity: argmaxCapacity)
        }
        let rectified = inputIsRectified, rectify = rectifiesInput
        precondition(!rectify || (kernel == 2 && stride == 2), "\(name): only 2x2 pooling applies the ReLU before it")
        if kernel == 2 && stride == 2 {
            // One task per sample.
            let channels = inputShape.channels, inPlane = inputShape.height * inputShape.width, outPlane = oh * ow
            Kernels.parallelFor(batch) { n in
                let first = n * channels
                Kernels.maxPool2x2(x + first * inPlane, y + first * outPlane, argmax: argmax + first * outPlane,
                                   planes: channels, height: h, width: w, rectified: rectified, rectify: rectify)
            }
            return y
        }
        for plane in 0..<planes {
            let source = x + plane * h * w
            let target = y + plane * oh * ow
            let index = argmax + plane * oh * ow
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
        return y
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard needsInputGradient else { return nil }
        if fusedIntoPrevious { return dY }
        let planes = batch * inputShape.channels
        let inPlane = inputShape.height * inputShape.width, outPlane = outputShape.height * outputShape.width
        let dx = workspace.inputGradient(planes * inPlane, avoiding: dY)
        let channels = inputShape.channels, argmax = argmax
        if kernel == 2 && stride == 2 {
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
