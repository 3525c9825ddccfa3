extension Network {
    /// Every BatchNorm of the network, fused or not.
    var batchNorms: [BatchNorm] {
        layers.compactMap { layer in
            (layer as? BatchNorm) ?? (layer as? BatchNormReLU)?.norm ?? (layer as? BatchNormReLUMaxPool2D)?.norm
        }
    }

    /// Sets every BatchNorm's running statistics to the plain mean of its batch statistics over
    /// `batches` training-mode forward passes (`fill(b)` writes batch b's input and returns its
    /// size). Weights averaged over many steps (`WeightAverage`) need statistics of their own:
    /// the running ones belong to the live weights (Izmailov et al. 2018 recompute them for SWA).
    /// Each pass starts from zero statistics, so after it a running value is momentum x the
    /// batch's; that divided by the momentum is the batch's statistic, averaged here in Double.
    public func recomputeBatchNormStatistics(batches: Int, context: PassContext,
                                             fill: (Int) -> (input: UnsafeMutablePointer<Float>, count: Int)) {
        let norms = batchNorms
        guard !norms.isEmpty, batches > 0 else { return }
        let count = store.bufferCount, buffers = store.buffers
        var sums = [Double](repeating: 0, count: count)
        var scale = [Double](repeating: 0, count: count)   // 1 / momentum of the layer owning each value
        for norm in norms {
            for slice in [norm.runningMean, norm.runningVariance] {
                for i in slice.offset..<(slice.offset + slice.count) { scale[i] = 1 / Double(norm.momentum) }
            }
        }
        var pass = context
        pass.mode = .training
        for b in 0..<batches {
            buffers.update(repeating: 0, count: count)
            let (input, n) = fill(b)
            pass.step = context.step &+ UInt64(b)
            _ = forward(input, batch: n, context: pass)
            for i in 0..<count { sums[i] += Double(buffers[i]) * scale[i] }
        }
        for i in 0..<count { buffers[i] = Float(sums[i] / Double(batches)) }
    }
}
