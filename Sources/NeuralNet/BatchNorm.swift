import CKernels

/// Batch normalisation per channel: over (N, H, W) for images (BatchNorm2D), over N for vectors
/// (BatchNorm1D, the same code with H = W = 1). Scale and shift are parameters; the running
/// mean and variance are non-trained buffers, updated in training and used in evaluation.
public final class BatchNorm: Layer {
    public let name: String
    public let inputShape: Shape
    public var outputShape: Shape { inputShape }
    public let momentum: Float
    public let epsilon: Float
    let store: ParameterStore
    let scale: ArenaSlice          // (C) gamma
    let shift: ArenaSlice          // (C) beta
    let runningMean: ArenaSlice    // (C)
    let runningVariance: ArenaSlice  // (C)
    private let output = FloatBuffer()      // (N, C, H, W)
    private let normalized = FloatBuffer()  // (N, C, H, W) x-hat, cached for backward
    private let inverseStd = FloatBuffer()  // (C)
    /// Write y over the input (the network sets this when the layer before is a convolution or
    /// dense layer, which do not read their output again); backward needs only xhat.
    public var writesOutputInPlace = false
    /// Apply the ReLU that follows in the same pass (the network sets this together with that
    /// ReLU's `inputIsRectified`); backward is unchanged, the ReLU still masks the gradient.
    public var rectifiesOutput = false
    /// Backward follows the mode of the last forward: batch statistics, or the fixed running ones.
    private var lastForwardUsedBatchStatistics = true

    /// The ReLU and 2x2 max pooling that follow, run inside this layer's passes (the network sets
    /// this on AVX-512 CPUs for conv → bn → relu → pool2, together with the pooling's
    /// `fusedIntoPrevious`). Forward then returns the pooled (N, C, H/2, W/2) output and writes
    /// neither x-hat nor the normalised plane; backward takes the pooled gradient and recomputes x-hat
    /// from the convolution's output, which it keeps. The results equal the separate layers' up to
    /// the order of the two per-channel gradient sums.
    public var fusesReLUAndPooling = false
    private let pooled = FloatBuffer()          // (N, C, H/2, W/2), fused forward only
    private let xhatAtMaxima = FloatBuffer()    // (N, C, H/2, W/2): x-hat of each window's maximum
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 1
    private let channelValues = FloatBuffer()   // (5, C): mean, k, sum dy, sum dy*xhat, eval scale
    private var input: UnsafeMutablePointer<Float>?

    deinit { argmax.deallocate() }

    var pooledShape: Shape { Shape(channels: inputShape.channels, height: inputShape.height / 2, width: inputShape.width / 2) }

    public init(name: String, inputShape: Shape, store: ParameterStore, momentum: Float = 0.1, epsilon: Float = 1e-5) {
        self.name = name
        self.inputShape = inputShape
        self.momentum = momentum
        self.epsilon = epsilon
        self.store = store
        let c = inputShape.channels
        scale = store.addParameter(name + ".weight", shape: [c], initial: .ones, decays: false)
        shift = store.addParameter(name + ".bias", shape: [c], initial: .zeros, decays: false)
        runningMean = store.addBuffer(name + ".running_mean", shape: [c], initial: .zeros)
        runningVariance = store.addBuffer(name + ".running_var", shape: [c], initial: .ones)
    }

    public var forwardMultiplyAdds: Int { inputShape.count }

    public func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        if fusesReLUAndPooling { return fusedForward(x, batch: batch, context: context) }
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let count = batch * inputShape.count
        let rectify = rectifiesOutput
        let y = writesOutputInPlace ? x : output.reserve(count)
        let gamma = store.parameters + scale.offset, beta = store.parameters + shift.offset
        let mean = store.buffers + runningMean.offset, variance = store.buffers + runningVariance.offset
        let xhat = normalized.reserve(count)
        let invStd = inverseStd.reserve(c)
        if context.mode == .evaluation {
            lastForwardUsedBatchStatistics = false
            let epsilon = epsilon
            Kernels.parallelFor(c) { ch in
                let inv = 1 / (variance[ch] + epsilon).squareRoot()
                invStd[ch] = inv
                let a = gamma[ch] * inv
                let b = beta[ch] - a * mean[ch]
                let mu = mean[ch]
                let muLanes = Vector.Lanes(repeating: mu), invLanes = Vector.Lanes(repeating: inv)
                let aLanes = Vector.Lanes(repeating: a), bLanes = Vector.Lanes(repeating: b), zero = Vector.Lanes(repeating: 0)
                for n in 0..<batch {
                    let base = (n * c + ch) * pixels
                    var p = 0
                    // 16 lanes at a time, the same operations as the scalar tail (no fused multiply-add).
                    while p + 16 <= pixels {
                        let v = Vector.load(x + base + p)   // read before y (which may be x) is written
                        Vector.store((v - muLanes) * invLanes, xhat + base + p)
                        let out = aLanes * v + bLanes
                        Vector.store(rectify ? out.replacing(with: zero, where: out .< zero) : out, y + base + p)
                        p += 16
                    }
                    while p < pixels {
                        let v = x[base + p]
                        xhat[base + p] = (v - mu) * inv
                        let out = a * v + b
                        y[base + p] = rectify && out < 0 ? 0 : out
                        p += 1
                    }
                }
            }
            return y
        }
        lastForwardUsedBatchStatistics = true
        // Channels are independent: one task each.
        Kernels.parallelFor(c) { ch in
            let first = x + ch * pixels, stride = c * pixels
            let (muF, inv) = batchStatistics(x, batch: batch, channel: ch)
            invStd[ch] = inv
            Kernels.channelNormalize(first, xhat: xhat + ch * pixels, y: y + ch * pixels, batch: batch, pixels: pixels,
                                     stride: stride, mean: muF, invStd: inv, gamma: gamma[ch], beta: beta[ch],
                                     rectify: rectify)
        }
        return y
    }

    /// One channel's batch mean and 1/sqrt(variance + epsilon) in training, with the running
    /// statistics moved towards them (momentum; unbiased variance).
    private func batchStatistics(_ x: UnsafePointer<Float>, batch: Int, channel ch: Int) -> (mean: Float, invStd: Float) {
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width, m = Double(batch * pixels)
        let (mu, biasedVariance) = Kernels.channelMoments(x + ch * pixels, batch: batch, pixels: pixels, stride: c * pixels)
        let runMean = store.buffers + runningMean.offset, runVariance = store.buffers + runningVariance.offset
        let muF = Float(mu)
        runMean[ch] = (1 - momentum) * runMean[ch] + momentum * muF
        let unbiased = m > 1 ? biasedVariance * m / (m - 1) : biasedVariance
        runVariance[ch] = (1 - momentum) * runVariance[ch] + momentum * Float(unbiased)
        return (muF, Float(1 / (biasedVariance + Double(epsilon)).squareRoot()))
    }

    public func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        if fusesReLUAndPooling { return fusedBackward(dY, batch: batch, needsInputGradient: needsInputGradient) }
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let xhat = normalized.pointer, invStd = inverseStd.pointer
        let gamma = store.parameters + scale.offset
        let dGamma = store.gradients + scale.offset, dBeta = store.gradients + shift.offset
        // In place: each channel's sums are taken before its dx overwrites its dy, element for element.
        let dx = needsInputGradient ? dY : nil
        let m = Float(batch * pixels)
        let usedBatchStatistics = lastForwardUsedBatchStatistics
        Kernels.parallelFor(c) { ch in
            let stride = c * pixels
            let (sumDy, sumDyXhat) = Kernels.channelGradientSums(dY + ch * pixels, xhat: xhat + ch * pixels, batch: batch,
                                                                 pixels: pixels, stride: stride)
            dGamma[ch] += Float(sumDyXhat)
            dBeta[ch] += Float(sumDy)
            guard let dx else { return }
            if !usedBatchStatistics {
                // Fixed statistics: an affine map per channel.
                let a = gamma[ch] * invStd[ch]
                for n in 0..<batch {
                    let base = (n * c + ch) * pixels
                    for p in 0..<pixels { dx[base + p] = a * dY[base + p] }
                }
                return
            }
            // dx = gamma * invstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
            let k = gamma[ch] * invStd[ch] / m
            Kernels.channelInputGradient(dY + ch * pixels, xhat: xhat + ch * pixels, dx: dx + ch * pixels, batch: batch,
                                         pixels: pixels, stride: stride, k: k, m: m, sumDy: Float(sumDy),
                                         sumDyXhat: Float(sumDyXhat))
        }
        return dx
    }
    // MARK: BatchNorm → ReLU → 2x2 max pooling as one layer

    private func fusedForward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        let c = inputShape.channels, h = inputShape.height, w = inputShape.width
        let outCount = batch * pooledShape.count
        input = x
        let y = pooled.reserve(outCount), xhatAtMax = xhatAtMaxima.reserve(outCount)
        if outCount > argmaxCapacity {
            argmax.deallocate()
            argmaxCapacity = outCount
            argmax = .allocate(capacity: outCount)
        }
        let gamma = store.parameters + scale.offset, beta = store.parameters + shift.offset
        let runMean = store.buffers + runningMean.offset, runVariance = store.buffers + runningVariance.offset
        let values = channelValues.reserve(5 * c)
        let mean = values, invStd = inverseStd.reserve(c)
        if context.mode == .evaluation {
            lastForwardUsedBatchStatistics = false
            for ch in 0..<c {
                mean[ch] = runMean[ch]
                invStd[ch] = 1 / (runVariance[ch] + epsilon).squareRoot()
            }
        } else {
            lastForwardUsedBatchStatistics = true
            Kernels.parallelFor(c) { ch in (mean[ch], invStd[ch]) = batchStatistics(x, batch: batch, channel: ch) }
        }
        let outPlanes = pooledShape.count, argmax = argmax, inCount = inputShape.count
        Kernels.parallelFor(batch) { n in
            ck_bn_relu_maxpool2x2(x + n * inCount, y + n * outPlanes, argmax + n * outPlanes, xhatAtMax + n * outPlanes, c, h, w,
                                  mean, invStd, gamma, beta)
        }
        return y
    }

    private func fusedBackward(_ dPooled: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard let x = input else { preconditionFailure("\(name): backward before forward") }
        let c = inputShape.channels, h = inputShape.height, w = inputShape.width, pixels = h * w
        let outPixels = pooledShape.height * pooledShape.width, outPlanes = pooledShape.count, inCount = inputShape.count
        let gamma = store.parameters + scale.offset
        let dGamma = store.gradients + scale.offset, dBeta = store.gradients + shift.offset
        let values = channelValues.pointer, invStd = inverseStd.pointer
        let mean = values, k = values + c, sumDy = values + 2 * c, sumDyXhat = values + 3 * c
        let m = Float(batch * pixels), argmax = argmax, xhatAtMax = xhatAtMaxima.pointer
        let usedBatchStatistics = lastForwardUsedBatchStatistics
        Kernels.parallelFor(c) { ch in
            var sums = (0.0, 0.0)
            withUnsafeMutableBytes(of: &sums) { raw in
                ck_bn_pool_gradient_sums(dPooled + ch * outPixels, argmax + ch * outPixels, xhatAtMax + ch * outPixels, batch,
                                         outPixels, outPlanes, raw.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            dGamma[ch] += Float(sums.1)
            dBeta[ch] += Float(sums.0)
            if usedBatchStatistics {
                k[ch] = gamma[ch] * invStd[ch] / m
                sumDy[ch] = Float(sums.0)
                sumDyXhat[ch] = Float(sums.1)
            } else {
                // Fixed statistics: dx = gamma * invStd * dy, the same formula with m = 1 and no sums.
                k[ch] = gamma[ch] * invStd[ch]
                sumDy[ch] = 0
                sumDyXhat[ch] = 0
            }
        }
        guard needsInputGradient else { return nil }
        // In place over x, the convolution's output: nothing reads it after this.
        let countScale: Float = usedBatchStatistics ? m : 1
        Kernels.parallelFor(batch) { n in
            ck_bn_pool_input_gradient(dPooled + n * outPlanes, argmax + n * outPlanes, xhatAtMax + n * outPlanes, x + n * inCount,
                                      x + n * inCount, c, h, w, mean, invStd, k, countScale, sumDy, sumDyXhat)
        }
        return x
    }
}
