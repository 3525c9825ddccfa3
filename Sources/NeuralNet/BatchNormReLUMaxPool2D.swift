import CKernels

/// BatchNorm, ReLU and max pooling, built by `LayerFusion` for `bn-relu-poolK`.
///
/// After a convolution (or dense layer) with 2x2 pooling, the three run as one pass
/// (`onePass`): forward reads the convolution's output once and writes only the pooled output,
/// each window's argmax and the x-hat of its maximum (no x-hat or normalised plane); backward
/// takes the pooled gradient, recomputes x-hat where it needs it from the convolution's output
/// (which it keeps) and writes the input gradient over it. The forward bits are the separate
/// layers'; the gradients equal theirs up to the order of the two per-channel sums.
///
/// Otherwise BatchNorm clamps at zero in its normalising pass and the pooling masks the gradient
/// through its argmax: the separate layers' bits.
final class BatchNormReLUMaxPool2D: Layer {
    let name: String
    let norm: BatchNorm
    let pooling: MaxPooling
    let onePass: Bool
    private let pooled = FloatBuffer()          // (N, C, H/2, W/2), one pass only
    private let xhatAtMaxima = FloatBuffer()    // (N, C, H/2, W/2): x-hat of each window's maximum
    private var argmax = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    private var argmaxCapacity = 1
    private let channelValues = FloatBuffer()   // (4, C): mean, k, sum dy, sum dy*xhat
    private let inverseStd = FloatBuffer()      // (C)
    private var input: UnsafeMutablePointer<Float>?
    private var lastForwardUsedBatchStatistics = true

    init(_ norm: BatchNorm, _ relu: ReLU, _ pool: MaxPool2D, onePass: Bool) {
        precondition(!onePass || (norm.writesOverInput && pool.pooling.isTwoByTwo), "\(norm.name): one pass needs 2x2 pooling over a convolution's output")
        self.norm = norm
        pooling = pool.pooling
        self.onePass = onePass
        name = [norm.name, relu.name, pool.name].joined(separator: "+")
    }

    deinit { argmax.deallocate() }

    var inputShape: Shape { norm.inputShape }
    var outputShape: Shape { pooling.outputShape }
    var forwardMultiplyAdds: Int { norm.forwardMultiplyAdds }

    func forward(_ x: UnsafeMutablePointer<Float>, batch: Int, context: PassContext) -> UnsafeMutablePointer<Float> {
        guard onePass else {
            return pooling.forward(norm.normalize(x, batch: batch, context: context, rectify: true), batch: batch, input: .rectified)
        }
        let c = inputShape.channels, h = inputShape.height, w = inputShape.width
        let outCount = batch * outputShape.count
        input = x
        let y = pooled.reserve(outCount), xhatAtMax = xhatAtMaxima.reserve(outCount)
        if outCount > argmaxCapacity {
            argmax.deallocate()
            argmaxCapacity = outCount
            argmax = .allocate(capacity: outCount)
        }
        let store = norm.store
        let gamma = store.parameters + norm.scale.offset, beta = store.parameters + norm.shift.offset
        let mean = channelValues.reserve(4 * c), invStd = inverseStd.reserve(c)
        lastForwardUsedBatchStatistics = context.mode != .evaluation
        if context.mode == .evaluation {
            let runMean = store.buffers + norm.runningMean.offset, runVariance = store.buffers + norm.runningVariance.offset
            for ch in 0..<c {
                mean[ch] = runMean[ch]
                invStd[ch] = 1 / (runVariance[ch] + norm.epsilon).squareRoot()
            }
        } else {
            Kernels.parallelFor(c) { ch in (mean[ch], invStd[ch]) = norm.batchStatistics(x, batch: batch, channel: ch) }
        }
        let outPlanes = outputShape.count, argmax = argmax, inCount = inputShape.count
        Kernels.parallelFor(batch) { n in
            ck_bn_relu_maxpool2x2(x + n * inCount, y + n * outPlanes, argmax + n * outPlanes, xhatAtMax + n * outPlanes, c, h, w,
                                  mean, invStd, gamma, beta)
        }
        return y
    }

    func backward(_ dY: UnsafeMutablePointer<Float>, batch: Int, needsInputGradient: Bool) -> UnsafeMutablePointer<Float>? {
        guard onePass else {
            return norm.backward(pooling.backward(dY, batch: batch), batch: batch, needsInputGradient: needsInputGradient)
        }
        guard let x = input else { preconditionFailure("\(name): backward before forward") }
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let values = channelValues.pointer
        let (k, sumDy, sumDyXhat) = (values + c, values + 2 * c, values + 3 * c)
        addParameterGradients(dY, batch: batch, k: k, sumDy: sumDy, sumDyXhat: sumDyXhat)
        guard needsInputGradient else { return nil }
        // In place over x, the convolution's output: nothing reads it after this.
        let usedBatchStatistics = lastForwardUsedBatchStatistics
        let countScale: Float = usedBatchStatistics ? Float(batch * pixels) : 1
        let h = inputShape.height, w = inputShape.width, mean = values, invStd = inverseStd.pointer
        let outPlanes = outputShape.count, inCount = inputShape.count, argmax = argmax, xhatAtMax = xhatAtMaxima.pointer
        Kernels.parallelFor(batch) { n in
            ck_bn_pool_input_gradient(dY + n * outPlanes, argmax + n * outPlanes, xhatAtMax + n * outPlanes, x + n * inCount,
                                      x + n * inCount, c, h, w, mean, invStd, k, countScale, sumDy, sumDyXhat)
        }
        return x
    }

    /// Per channel: the sums of dy and dy * x-hat over the windows' maxima, added into gamma's and
    /// beta's gradients, and the input gradient's coefficients (k, and the sums it subtracts).
    private func addParameterGradients(_ dPooled: UnsafeMutablePointer<Float>, batch: Int, k: UnsafeMutablePointer<Float>,
                                       sumDy: UnsafeMutablePointer<Float>, sumDyXhat: UnsafeMutablePointer<Float>) {
        let c = inputShape.channels, pixels = inputShape.height * inputShape.width
        let outPixels = outputShape.height * outputShape.width, outPlanes = outputShape.count
        let store = norm.store
        let gamma = store.parameters + norm.scale.offset
        let dGamma = store.gradients + norm.scale.offset, dBeta = store.gradients + norm.shift.offset
        let invStd = inverseStd.pointer, m = Float(batch * pixels), argmax = argmax, xhatAtMax = xhatAtMaxima.pointer
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
    }
}
