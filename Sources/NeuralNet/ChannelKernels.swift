import CKernels

// Batch-norm channel passes and 2x2 max pooling behind the same switch as the GEMM: the AVX-512
// C kernels where the CPU has them, plain Swift everywhere else. A channel of an NCHW batch is
// `batch` runs of `pixels` floats, `stride` (= C*H*W) apart; sums run in a fixed order.
extension Kernels {
    /// Σ x over one channel, in Double.
    static func channelSum(_ x: UnsafePointer<Float>, batch: Int, pixels: Int, stride: Int,
                           backend: Backend = backend) -> Double {
        if backend == .avx512 { return ck_channel_sum(x, batch, pixels, stride) }
        var total = 0.0
        for n in 0..<batch { total += Double(Vector.sum(x + n * stride, pixels)) }
        return total
    }

    /// Σ (x - mean)² over one channel, in Double.
    static func channelSquaredDeviations(_ x: UnsafePointer<Float>, batch: Int, pixels: Int, stride: Int, mean: Float,
                                         backend: Backend = backend) -> Double {
        if backend == .avx512 { return ck_channel_squared_deviations(x, batch, pixels, stride, mean) }
        var total = 0.0
        for n in 0..<batch { total += Double(Vector.sumOfSquaredDeviations(x + n * stride, pixels, mean: mean)) }
        return total
    }

    /// Mean and biased variance of one channel. AVX-512: one pass of sums shifted by a value near
    /// the mean; portable: the two-pass sum and sum of squared deviations.
    static func channelMoments(_ x: UnsafePointer<Float>, batch: Int, pixels: Int, stride: Int,
                               backend: Backend = backend) -> (mean: Double, variance: Double) {
        let m = Double(batch * pixels)
        if backend == .avx512 {
            var sums: (Double, Double) = (0, 0)
            // Shift by the mean of the first sample's first (up to) 16 values: near the channel mean
            // unless that sample is an extreme outlier.
            let head = min(16, pixels)
            var shift: Float = 0
            for i in 0..<head { shift += x[i] }
            shift /= Float(head)
            withUnsafeMutableBytes(of: &sums) { raw in
                ck_channel_shifted_sums(x, batch, pixels, stride, shift, raw.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            let meanOffset = sums.0 / m
            return (Double(shift) + meanOffset, max(0, sums.1 / m - meanOffset * meanOffset))
        }
        let mean = channelSum(x, batch: batch, pixels: pixels, stride: stride, backend: backend) / m
        let squares = channelSquaredDeviations(x, batch: batch, pixels: pixels, stride: stride, mean: Float(mean), backend: backend)
        return (mean, squares / m)
    }

    /// xhat = (x - mean) * invStd; y = gamma * xhat + beta, rectified (a fused ReLU) when asked.
    static func channelNormalize(_ x: UnsafePointer<Float>, xhat: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 batch: Int, pixels: Int, stride: Int, mean: Float, invStd: Float, gamma: Float, beta: Float,
                                 rectify: Bool = false, backend: Backend = backend) {
        if backend == .avx512 {
            ck_channel_normalize(x, xhat, y, batch, pixels, stride, mean, invStd, gamma, beta, rectify ? 1 : 0)
            return
        }
        for n in 0..<batch {
            let base = n * stride
            for p in 0..<pixels {
                let h = (x[base + p] - mean) * invStd
                xhat[base + p] = h
                let v = gamma * h + beta
                y[base + p] = rectify && v < 0 ? 0 : v
            }
        }
    }

    /// (Σ dy, Σ dy * xhat) over one channel, in Double.
    static func channelGradientSums(_ dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>, batch: Int, pixels: Int, stride: Int,
                                    backend: Backend = backend) -> (sumDy: Double, sumDyXhat: Double) {
        var sums: (Double, Double) = (0, 0)
        if backend == .avx512 {
            withUnsafeMutableBytes(of: &sums) { raw in
                ck_channel_gradient_sums(dy, xhat, batch, pixels, stride, raw.baseAddress!.assumingMemoryBound(to: Double.self))
            }
            return sums
        }
        for n in 0..<batch {
            sums.0 += Double(Vector.sum(dy + n * stride, pixels))
            sums.1 += Double(Vector.dot(dy + n * stride, xhat + n * stride, pixels))
        }
        return sums
    }

    /// dx = k * (m * dy - sumDy - xhat * sumDyXhat): BatchNorm's input gradient with batch statistics.
    static func channelInputGradient(_ dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                     batch: Int, pixels: Int, stride: Int, k: Float, m: Float, sumDy: Float, sumDyXhat: Float,
                                     backend: Backend = backend) {
        if backend == .avx512 {
            ck_channel_input_gradient(dy, xhat, dx, batch, pixels, stride, k, m, sumDy, sumDyXhat)
            return
        }
        for n in 0..<batch {
            let base = n * stride
            for p in 0..<pixels { dx[base + p] = k * (m * dy[base + p] - sumDy - xhat[base + p] * sumDyXhat) }
        }
    }

    /// 2x2, stride-2 max pooling of `planes` (h, w) planes into (h/2, w/2), with each maximum's index
    /// in its input plane. Ties go to the first element in row-major order. `rectified` (the input
    /// came out of a ReLU): a window whose maximum is not positive gets index ~argmax (negative), so
    /// backward passes it nothing, which is the ReLU's own gradient mask. `rectify` (implies
    /// `rectified`): the ReLU has not run yet and is applied here, max(0, ·) of each window's maximum,
    /// which is the maximum of the rectified window.
    static func maxPool2x2(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                           planes: Int, height h: Int, width w: Int, rectified: Bool = false, rectify: Bool = false,
                           backend: Backend = backend) {
        let rectified = rectified || rectify
        if backend == .avx512 {
            ck_maxpool2x2(x, y, argmax, planes, h, w, rectify ? 2 : rectified ? 1 : 0)
            return
        }
        let oh = h / 2, ow = w / 2
        for plane in 0..<planes {
            let source = x + plane * h * w
            let target = y + plane * oh * ow
            let index = argmax + plane * oh * ow
            for oy in 0..<oh {
                let top = source + 2 * oy * w, bottom = top + w
                let base = Int32(2 * oy * w)
                for ox in 0..<ow {
                    let a = top[2 * ox], b = top[2 * ox + 1], c = bottom[2 * ox], d = bottom[2 * ox + 1]
                    var best = a, at = Int32(2 * ox)
                    if b > best { best = b; at = Int32(2 * ox + 1) }
                    if c > best { best = c; at = Int32(w + 2 * ox) }
                    if d > best { best = d; at = Int32(w + 2 * ox + 1) }
                    target[oy * ow + ox] = rectify && !(best > 0) ? 0 : best
                    index[oy * ow + ox] = rectified && !(best > 0) ? ~(base + at) : base + at
                }
            }
        }
    }
    /// The adjoint of `maxPool2x2`: every element of dx is written, dy at each window's argmax and 0
    /// elsewhere (all four for a window with a negative index).
    static func maxPool2x2Backward(_ dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
                                   planes: Int, height h: Int, width w: Int, backend: Backend = backend) {
        if backend == .avx512 {
            ck_maxpool2x2_backward(dy, argmax, dx, planes, h, w)
            return
        }
        let outPlane = (h / 2) * (w / 2)
        dx.update(repeating: 0, count: planes * h * w)
        for plane in 0..<planes {
            let target = dx + plane * h * w, base = plane * outPlane
            for o in 0..<outPlane where argmax[base + o] >= 0 { target[Int(argmax[base + o])] = dy[base + o] }
        }
    }
}
