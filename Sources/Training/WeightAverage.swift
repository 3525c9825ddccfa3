import NeuralNet

/// An exponential moving average of the weights, kept beside the live ones (Polyak and Juditsky
/// 1992; the form most training recipes use today). After every optimizer step
/// average = d x average + (1 - d) x weights, with d = min(decay, (1 + t) / (10 + t)) at update t,
/// so the first updates are not dominated by the initial weights. Every rank holds the same
/// weights, so every rank's average is the same without communication. BatchNorm running
/// statistics of the averaged weights are recomputed from training batches before they are
/// evaluated (`buffers`), not averaged.
public final class WeightAverage {
    public let decay: Float
    /// (parameterCount) the averaged parameters, in the store's layout.
    public internal(set) var parameters: [Float]
    /// (bufferCount) BatchNorm running statistics measured with the averaged parameters (as of
    /// the last `Trainer.recalibrateAverage`).
    public internal(set) var buffers: [Float]
    /// Updates so far (the t above).
    public internal(set) var updates = 0

    init(decay: Float, store: ParameterStore) {
        self.decay = decay
        parameters = Array(store.parameterBuffer)
        buffers = Array(store.bufferBuffer)
    }

    /// Moves the average towards the store's parameters.
    func update(from store: ParameterStore) {
        let t = Float(updates)
        let d = min(decay, (1 + t) / (10 + t))
        let live = store.parameters
        parameters.withUnsafeMutableBufferPointer { average in
            for i in 0..<average.count { average[i] = d * average[i] + (1 - d) * live[i] }
        }
        updates += 1
    }

    /// Runs `body` with the averaged parameters and buffers in the store, then puts the live ones
    /// back; what `body` leaves in the buffers becomes the average's statistics.
    func withAveragedWeights<T>(in store: ParameterStore, _ body: () throws -> T) rethrows -> T {
        let liveParameters = Array(store.parameterBuffer), liveBuffers = Array(store.bufferBuffer)
        copy(parameters, to: store.mutableParameters())
        copy(buffers, to: store.buffers)
        defer {
            buffers = Array(store.bufferBuffer)
            copy(liveParameters, to: store.mutableParameters())
            copy(liveBuffers, to: store.buffers)
        }
        return try body()
    }

    private func copy(_ values: [Float], to target: UnsafeMutablePointer<Float>) {
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { target.update(from: base, count: source.count) }
        }
    }

    /// Tensor names of the average in a checkpoint: "ema." and the store's name.
    public static let tensorPrefix = "ema."
}
