import CKernels

// Batch-norm channel passes and 2x2 max pooling: thin Swift names over the kernel table
// (ckernels.h). A channel of an NCHW batch is `batch` runs of `pixels` floats, `stride` (= C*H*W)
// apart; sums run in a fixed order, so results are deterministic.
extension Kernels {
    /// Mean and biased variance of one channel, in one pass of sums shifted by a value near the mean.
    static func channelMoments(_ x: UnsafePointer<Float>, batch: Int, pixels: Int, stride: Int) -> (mean: Double, variance: Double) {
        let m = Double(batch * pixels)
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

    /// xhat = (x - mean) * invStd; y = gamma * xhat + beta, rectified (a fused ReLU) when asked.
    static func channelNormalize(_ x: UnsafePointer<Float>, xhat: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>,
                                 batch: Int, pixels: Int, stride: Int, mean: Float, invStd: Float, gamma: Float, beta: Float,
                                 rectify: Bool = false) {
        ck_channel_normalize(x, xhat, y, batch, pixels, stride, mean, invStd, gamma, beta, rectify ? 1 : 0)
    }

    /// (Σ dy, Σ dy * xhat) over one channel, in Double.
    static func channelGradientSums(_ dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>, batch: Int, pixels: Int,
                                    stride: Int) -> (sumDy: Double, sumDyXhat: Double) {
        var sums: (Double, Double) = (0, 0)
        withUnsafeMutableBytes(of: &sums) { raw in
            ck_channel_gradient_sums(dy, xhat, batch, pixels, stride, raw.baseAddress!.assumingMemoryBound(to: Double.self))
        }
        return sums
    }

    /// dx = k * (m * dy - sumDy - xhat * sumDyXhat): BatchNorm's input gradient with batch statistics.
    static func channelInputGradient(_ dy: UnsafePointer<Float>, xhat: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                                     batch: Int, pixels: Int, stride: Int, k: Float, m: Float, sumDy: Float, sumDyXhat: Float) {
        ck_channel_input_gradient(dy, xhat, dx, batch, pixels, stride, k, m, sumDy, sumDyXhat)
    }

    /// 2x2, stride-2 max pooling of `planes` (h, w) planes into (h/2, w/2), with each maximum's index
    /// in its input plane. Ties go to the first element in row-major order. `rectified` (the input
    /// came out of a ReLU): a window whose maximum is not positive gets index ~argmax (negative), so
    /// backward passes it nothing, which is the ReLU's own gradient mask. `rectify` (implies
    /// `rectified`): the ReLU has not run yet and is applied here, max(0, ·) of each window's maximum,
    /// which is the maximum of the rectified window.
    static func maxPool2x2(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, argmax: UnsafeMutablePointer<Int32>,
                           planes: Int, height h: Int, width w: Int, rectified: Bool = false, rectify: Bool = false) {
        ck_maxpool2x2(x, y, argmax, planes, h, w, rectify ? 2 : rectified ? 1 : 0)
    }

    /// The adjoint of `maxPool2x2`: every element of dx is written, dy at each window's argmax and 0
    /// elsewhere (all four for a window with a negative index).
    static func maxPool2x2Backward(_ dy: UnsafePointer<Float>, argmax: UnsafePointer<Int32>, dx: UnsafeMutablePointer<Float>,
                                   planes: Int, height h: Int, width w: Int) {
        ck_maxpool2x2_backward(dy, argmax, dx, planes, h, w)
    }
}
