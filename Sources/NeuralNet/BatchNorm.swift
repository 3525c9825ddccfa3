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
    /// Write y over the input, when the layer before does not read its output again (a convolution
    /// or dense layer; the network's fusion pass decides). Backward needs only x-hat.
    let writesOverInput: Bool
    /// Backward follows the mode of the last forward: batch statistics, or the fixed running ones.
    private var lastForwardUsedBatchStatistics = true

    public init(name: String, inputShape: Shape, store: ParameterStore, momentum: Float = 0.1, epsilon: Float = 1e-5,
                writesOverInput: Bool = false) {
        self.name = name
        self.inputShape = inputShape
        self.writesOverInput = writesOverInput
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
        normalize(x, batch: batch, context: context, rectify: false)
    }

    /// y = gamma * x-hat + beta, clamped at zero when `rectify` (the pass of `BatchNormReLU`).
    func normalize(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext, rectify: Bool) -> UnsafeMutablePointer<Float> {
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let count = batch * inputShape.count
        let y = writesOverInput ? x : output.reserve(count)
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
    func batchStatistics(_ x: UnsafePointer<Float>, batch: Int, channel ch: Int) -> (mean: Float, invStd: Float) {
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
}
