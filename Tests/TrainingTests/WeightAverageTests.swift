import Augmentation
import Collective
import Datasets
import Foundation
import NeuralNet
import Testing
@testable import Training

@Suite struct WeightAverageTests {
    static let model = "conv4k3p1-bn-relu-pool2-flatten-drop0.2-dense10"

    func trainer(ema: Float? = 0.99, labelSmoothing: Float = 0, augmentOff: Int = 0, epochs: Int = 2) throws -> Trainer {
        var config = TrainingConfiguration(model: try ModelSpec(parsing: Self.model), epochs: epochs, batchSize: 16,
                                           optimizer: .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), learningRate: 1e-3,
                                           schedule: .cosine, seed: 4)
        config.averageDecay = ema
        config.labelSmoothing = labelSmoothing
        config.augmentationOffEpochs = augmentOff
        return try Trainer(configuration: config, train: DataParallelTests.synthetic)
    }

    /// The average follows average = d average + (1 - d) weights with d = min(decay, (1+t)/(10+t)),
    /// checked against the same recurrence run on copies of the weights after every step.
    @Test func theAverageIsTheWarmedUpExponentialAverageOfTheWeights() throws {
        let t = try trainer()
        let store = t.network.store
        var expected = Array(store.parameterBuffer)
        let plan = t.currentPlan()
        t.afterStep = { t in
            let step = Float(t.globalStep - 1)
            let d = min(Float(0.99), (1 + step) / (10 + step))
            for i in 0..<expected.count { expected[i] = d * expected[i] + (1 - d) * store.parameters[i] }
        }
        _ = try t.runEpoch(stepLimit: 20)
        #expect(plan.steps > 20)
        let average = try #require(t.average)
        #expect(average.updates == 20)
        #expect(zip(average.parameters, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
        #expect(average.parameters != Array(store.parameterBuffer))
    }

    /// The average's BatchNorm statistics are the plain mean of the batch statistics, and the
    /// live weights and statistics are untouched by measuring and scoring the average.
    @Test func recalibrationMeasuresTheAverageWithoutTouchingTheLiveWeights() throws {
        let t = try trainer()
        _ = try t.runEpoch(stepLimit: 10)
        let liveParameters = Array(t.network.store.parameterBuffer), liveBuffers = Array(t.network.store.bufferBuffer)
        let evaluation = try #require(try t.evaluateAverage(DataParallelTests.synthetic))
        #expect(evaluation.count == DataParallelTests.synthetic.count)
        #expect(Array(t.network.store.parameterBuffer) == liveParameters && Array(t.network.store.bufferBuffer) == liveBuffers)
        let average = try #require(t.average)
        // Running variances of the average are positive and not the initial ones.
        let variance = t.network.store.bufferEntries.first { $0.name.hasSuffix("running_var") }!
        let values = average.buffers[variance.slice.offset..<(variance.slice.offset + variance.slice.count)]
        #expect(values.allSatisfy { $0 > 0 } && values.contains { abs($0 - 1) > 1e-3 })
        // Recalibrating twice at the same epoch gives the same statistics (a keyed, fixed order).
        let first = average.buffers
        try t.recalibrateAverage()
        #expect(average.buffers == first)
    }

    @Test func recomputedStatisticsAreTheMeanOfTheBatchStatistics() throws {
        let spec = try ModelSpec(parsing: "bn-flatten-dense2", input: Shape(channels: 2, height: 1, width: 2), classes: 2)
        let network = Network(spec: spec, seed: 1)
        // Two batches of 2 images (2 channels x 2 pixels): channel 0 holds 1,2,3,4 then 5,6,7,8.
        let batches: [[Float]] = [[1, 2, 10, 10, 3, 4, 10, 10], [5, 6, 0, 2, 7, 8, 0, 2]]
        let input = UnsafeMutablePointer<Float>.allocate(capacity: 8)
        defer { input.deallocate() }
        network.recomputeBatchNormStatistics(batches: 2, context: PassContext(mode: .evaluation)) { b in
            input.update(from: batches[b], count: 8)
            return (input, 2)
        }
        let buffers = Array(network.store.bufferBuffer)   // mean (2), var (2)
        // Channel 0: batch means 2.5 and 6.5, unbiased variances 5/3 each; channel 1: 10 and 1, variances 0 and 4/3.
        let expected: [Float] = [4.5, 5.5, 5.0 / 3, 2.0 / 3]
        #expect(zip(buffers, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(buffers)")
    }

    /// A run with a weight average and label smoothing stopped inside an epoch and resumed from
    /// its checkpoint ends with the same weights, the same average and the same choice.
    @Test func resumeWithAnAverageIsBitIdentical() throws {
        let uninterrupted = try trainer(labelSmoothing: 0.1)
        while !uninterrupted.isFinished { _ = try uninterrupted.runEpoch() }
        let first = try trainer(labelSmoothing: 0.1)
        first.stopAtStep = 50
        while !first.isFinished { _ = try first.runEpoch() }
        let decoded = try Safetensors.decode(
            try Safetensors.encode(first.checkpointTensors(), metadata: first.checkpointMetadata(extra: [])), path: "mem")
        #expect(decoded.tensors.contains { $0.name.hasPrefix(WeightAverage.tensorPrefix) })
        let resumed = try trainer(labelSmoothing: 0.1)
        try resumed.restore(tensors: decoded.tensors, metadata: decoded.metadata, path: "mem")
        while !resumed.isFinished { _ = try resumed.runEpoch() }
        #expect(resumed.weightsDigest() == uninterrupted.weightsDigest())
        #expect(resumed.average?.parameters == uninterrupted.average?.parameters)
        #expect(resumed.average?.updates == uninterrupted.average?.updates)
        // A checkpoint without the average cannot resume a run that keeps one.
        let plain = try trainer(ema: nil)
        _ = try plain.runEpoch(stepLimit: 3)
        let noAverage = try Safetensors.decode(
            try Safetensors.encode(plain.checkpointTensors(), metadata: plain.checkpointMetadata(extra: [])), path: "p")
        #expect(throws: CheckpointError.self) { try trainer().restore(tensors: noAverage.tensors, metadata: noAverage.metadata, path: "p") }
    }

    /// Label smoothing changes what is learned; the last epochs without augmentation train on plain images.
    @Test func labelSmoothingAndAugmentationOffChangeTheRun() throws {
        let plain = try trainer(ema: nil, epochs: 1)
        _ = try plain.runEpoch(stepLimit: 5)
        let smoothed = try trainer(ema: nil, labelSmoothing: 0.2, epochs: 1)
        _ = try smoothed.runEpoch(stepLimit: 5)
        #expect(plain.weightsDigest() != smoothed.weightsDigest())

        func run(augmentOff: Int) throws -> String {
            var config = TrainingConfiguration(model: try ModelSpec(parsing: Self.model), epochs: 2, batchSize: 16, seed: 4,
                                               augmentation: try AugmentationSettings(parsing: "default"))
            config.augmentationOffEpochs = augmentOff
            let t = try Trainer(configuration: config, train: DataParallelTests.synthetic)
            while !t.isFinished { _ = try t.runEpoch() }
            return t.weightsDigest()
        }
        let noneOff = try run(augmentOff: 0), lastOff = try run(augmentOff: 1)
        #expect(noneOff != lastOff)
        // Off for both epochs is the same as no augmentation at all.
        let allOff = try run(augmentOff: 2)
        let unaugmented = try Trainer(configuration: TrainingConfiguration(model: try ModelSpec(parsing: Self.model), epochs: 2,
                                                                           batchSize: 16, seed: 4),
                                      train: DataParallelTests.synthetic)
        while !unaugmented.isFinished { _ = try unaugmented.runEpoch() }
        #expect(allOff == unaugmented.weightsDigest())
    }
}
