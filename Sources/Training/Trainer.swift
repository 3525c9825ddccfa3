import Augmentation
import Collective
import Datasets
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that decides what a training run computes. Every rank must agree on all of it
/// (see `ConfigurationCheck`).
public struct TrainingConfiguration: Sendable {
    public var model: ModelSpec
    public var epochs: Int
    /// Images per rank per step; the global batch is worldSize times this.
    public var batchSize: Int
    public var optimizer: OptimizerKind
    /// The peak learning rate actually used (after any scaling rule).
    public var learningRate: Float
    public var schedule: LearningRateSchedule.Kind
    public var warmupSteps: Int
    public var weightDecay: Float
    public var seed: UInt64
    public var placement: DataPlacement
    /// Random warps of training images (never of test images); `.none` for plain data.
    public var augmentation: AugmentationSettings
    /// Stop after this many steps in all (nil: run every epoch).
    public var maxSteps: Int?

    public init(model: ModelSpec, epochs: Int = 1, batchSize: Int = 64, optimizer: OptimizerKind = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8),
                learningRate: Float = 1e-3, schedule: LearningRateSchedule.Kind = .constant, warmupSteps: Int = 0,
                weightDecay: Float = 0, seed: UInt64 = 1, placement: DataPlacement = .shard,
                augmentation: AugmentationSettings = .none, maxSteps: Int? = nil) {
        self.model = model; self.epochs = epochs; self.batchSize = batchSize; self.optimizer = optimizer
        self.learningRate = learningRate; self.schedule = schedule; self.warmupSteps = warmupSteps
        self.weightDecay = weightDecay; self.seed = seed; self.placement = placement
        self.augmentation = augmentation; self.maxSteps = maxSteps
    }

    /// Named fields for the cross-rank check and the metrics log.
    public var fields: [(String, String)] {
        [("model", model.description), ("epochs", "\(epochs)"), ("batch size per rank", "\(batchSize)"),
         ("optimizer", "\(optimizer)"), ("learning rate", "\(learningRate)"), ("schedule", "\(schedule)"),
         ("warmup steps", "\(warmupSteps)"), ("weight decay", "\(weightDecay)"), ("seed", "\(seed)"),
         ("data placement", placement.rawValue), ("augmentation", augmentation.description),
         ("max steps", maxSteps.map(String.init) ?? "none")]
    }
}

/// Where an epoch's wall time went on this rank.
public struct TimeBreakdown: Sendable {
    /// Forward, backward and the optimizer update.
    public var compute = 0.0
    /// Waiting in the gradient allreduce (communication plus any imbalance between ranks).
    public var allreduce = 0.0
    /// Waiting for the next batch: assembling it, or for the augmentation thread when it fell behind.
    public var data = 0.0
    /// Time the augmentation thread spent, overlapped with compute (not part of `total`).
    public var augmentationBackground = 0.0
    /// Evaluating on the test set, with its reductions.
    public var evaluation = 0.0
    public var total: Double { compute + allreduce + data + evaluation }
}

/// One epoch's results, as printed and written to the metrics log.
public struct EpochMetrics: Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// Global images per second (all ranks) during the training steps.
    public var imagesPerSecond: Double
    public var seconds: Double
    public var learningRate: Float
    public var time = TimeBreakdown()
    public var worldSize = 1

    /// One JSON object on one line.
    public var jsonLine: String {
        var fields = [
            "\"epoch\":\(epoch)", "\"step\":\(step)", "\"world_size\":\(worldSize)",
            "\"train_loss\":\(json(trainLoss))", "\"train_accuracy\":\(json(trainAccuracy))",
        ]
        if let testLoss { fields.append("\"test_loss\":\(json(testLoss))") }
        if let testAccuracy { fields.append("\"test_accuracy\":\(json(testAccuracy))") }
        fields += ["\"images_per_second\":\(json(imagesPerSecond))", "\"seconds\":\(json(seconds))",
                   "\"learning_rate\":\(json(Double(learningRate)))",
                   "\"compute_seconds\":\(json(time.compute))", "\"allreduce_seconds\":\(json(time.allreduce))",
                   "\"data_seconds\":\(json(time.data))", "\"augmentation_background_seconds\":\(json(time.augmentationBackground))",
                   "\"evaluation_seconds\":\(json(time.evaluation))"]
        return "{" + fields.joined(separator: ",") + "}"
    }
}

func json(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

/// The data-parallel training loop of one rank: sample from its data, forward and backward
/// into the gradient arena, ONE allreduce of the whole arena, the same update on every rank.
/// With a `SingleProcessCommunicator` it is ordinary single-process training.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let communicator: Communicator
    public let network: Network
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    public let train: Dataset
    public let sampler: EpochSampler
    let pipeline: BatchPipeline
    public private(set) var globalStep = 0
    /// Gradient bytes each rank contributes to every step's allreduce.
    public var allreduceBytesPerStep: Int { network.parameterCount * MemoryLayout<Float>.stride }

    public init(configuration: TrainingConfiguration, train: Dataset, communicator: Communicator = SingleProcessCommunicator()) throws {
        self.configuration = configuration
        self.communicator = communicator
        self.train = train
        network = Network(spec: configuration.model, seed: configuration.seed)
        optimizer = Optimizer(kind: configuration.optimizer, store: network.store, weightDecay: configuration.weightDecay)
        sampler = EpochSampler(placement: configuration.placement, localCount: train.count, totalCount: train.totalCount,
                               worldSize: communicator.size, batchSize: configuration.batchSize,
                               seed: configuration.seed, rank: communicator.rank)
        let planned = sampler.stepsPerEpoch * configuration.epochs
        schedule = LearningRateSchedule(kind: configuration.schedule, peak: configuration.learningRate,
                                        warmupSteps: configuration.warmupSteps,
                                        totalSteps: min(planned, configuration.maxSteps ?? planned))
        let augmenter = configuration.augmentation.isIdentity ? nil
            : Augmenter(settings: configuration.augmentation, width: train.width, height: train.height, seed: configuration.seed)
        pipeline = BatchPipeline(dataset: train, batchSize: configuration.batchSize, augmenter: augmenter)
        // Every rank starts from rank 0's weights (they are equal by seed already; this makes it a fact).
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.parameterBuffer), root: 0)
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.bufferBuffer), root: 0)
    }

    public var totalSteps: Int { schedule.totalSteps }
    public var globalBatchSize: Int { configuration.batchSize * communicator.size }

    /// Runs one epoch (or until maxSteps, or `stepLimit` more steps). Train loss and accuracy are
    /// summed over all ranks. `progress(stepInEpoch, stepsInEpoch)` is called after each step.
    public func runEpoch(_ epoch: Int, stepLimit: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> EpochMetrics {
        let order = sampler.order(epoch: epoch)
        let batch = configuration.batchSize
        let gradientDenominator = globalBatchSize   // folds the 1/worldSize of the average into the loss gradient
        var sums = [0.0, 0.0, 0.0]                  // loss sum, correct, samples
        var time = TimeBreakdown()
        let start = monotonicSeconds()
        var lr: Float = 0
        // Steps are numbered globally; an epoch may be entered part-way (a step limit, a resume).
        let epochStart = epoch * sampler.stepsPerEpoch
        let first = max(0, globalStep - epochStart)
        var last = min(sampler.stepsPerEpoch, totalSteps - epochStart)
        if let stepLimit { last = min(last, first + stepLimit) }
        var steps = 0
        pipeline.begin(epoch: epoch, batches: (first..<max(first, last)).map { sampler.batch(order, step: $0) })
        defer { pipeline.finish() }
        for stepInEpoch in first..<max(first, last) {
            let t0 = monotonicSeconds()
            let assembler = pipeline.next()
            let t1 = monotonicSeconds()
            network.store.zeroGradients()
            let result = network.accumulateGradients(
                input: assembler.input.pointer, labels: assembler.labels, batch: batch,
                context: PassContext(mode: .training, seed: configuration.seed, step: UInt64(globalStep), rank: communicator.rank),
                gradientDenominator: gradientDenominator)
            let t2 = monotonicSeconds()
            try communicator.allreduceSum(network.store.gradientBuffer)
            let t3 = monotonicSeconds()
            lr = schedule.rate(at: globalStep)
            optimizer.step(learningRate: lr)
            let t4 = monotonicSeconds()
            time.data += t1 - t0
            time.compute += (t2 - t1) + (t4 - t3)
            time.allreduce += t3 - t2
            globalStep += 1
            steps += 1
            sums[0] += result.lossSum
            sums[1] += Double(result.correct)
            sums[2] += Double(batch)
            progress?(stepInEpoch + 1, sampler.stepsPerEpoch)
        }
        let seconds = monotonicSeconds() - start
        pipeline.finish()
        time.augmentationBackground = pipeline.backgroundSeconds
        try communicator.allreduceSum(&sums)
        var slowest = [seconds]
        try communicator.allreduceMax(&slowest)
        return EpochMetrics(epoch: epoch + 1, step: globalStep, trainLoss: sums[2] > 0 ? sums[0] / sums[2] : 0,
                            trainAccuracy: sums[2] > 0 ? sums[1] / sums[2] : 0, testLoss: nil, testAccuracy: nil,
                            imagesPerSecond: sums[2] / max(slowest[0], 1e-9), seconds: slowest[0], learningRate: lr,
                            time: time, worldSize: communicator.size)
    }

    /// Makes BatchNorm running statistics equal on every rank (their mean), as before every
    /// evaluation and checkpoint: each rank saw different batches.
    public func synchronizeBuffers() throws {
        guard communicator.size > 1, network.store.bufferCount > 0 else { return }
        let buffers = network.store.bufferBuffer
        try communicator.allreduceSum(buffers)
        let scale = 1 / Float(communicator.size)
        for i in 0..<buffers.count { buffers[i] *= scale }
    }

    /// Test loss and accuracy over `test`, split across ranks and reduced; `test` is this rank's part.
    public func evaluate(_ test: Dataset) throws -> Evaluation {
        try synchronizeBuffers()
        let part = Evaluation.run(network, on: test)
        var sums = [part.lossSum, Double(part.correct), Double(part.count)]
        try communicator.allreduceSum(&sums)
        return Evaluation(lossSum: sums[0], correct: Int(sums[1]), count: Int(sums[2]))
    }

    /// SHA-256 of the parameter and buffer arenas (for comparing ranks and runs).
    public func weightsDigest() -> String {
        var hasher = SHA256()
        hasher.update(UnsafeRawBufferPointer(network.store.parameterBuffer))
        hasher.update(UnsafeRawBufferPointer(network.store.bufferBuffer))
        return hexString(hasher.finalize())
    }
}

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
