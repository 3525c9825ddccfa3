import Augmentation
import Collective
import CounterRNG
import Datasets
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
/// The data-parallel training loop of one rank: sample from its data, forward and backward
/// into the gradient arena, ONE allreduce of the whole arena, the same update on every rank.
/// With a `SingleProcessCommunicator` it is ordinary single-process training.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let communicator: Communicator
    public let network: Network
    public let optimizer: Optimizer
    public internal(set) var schedule: LearningRateSchedule
    public let train: Dataset
    public let sampler: EpochSampler
    let pipeline: BatchPipeline
    /// The per-step gradient allreduce (buckets, compression).
    public let exchange: GradientExchange
    /// Made once, so a step allocates no closure.
    private let layerDone: ((Int) -> Void)?
    private let reductionProgress: (() -> Void)?
    /// Optimizer updates so far (the key of dropout masks).
    public internal(set) var globalStep = 0
    /// The epoch in progress (0-based) and the steps of it already taken.
    public internal(set) var epoch = 0
    public internal(set) var stepInEpoch = 0
    /// Training samples consumed over all ranks; the schedule's position is samples / `scheduleBatch`.
    public internal(set) var samplesConsumed = 0
    /// The global batch the schedule was planned with (differs from ours after a resume on another world size).
    public internal(set) var scheduleBatch: Int
    /// This rank's loss sum, correct count and sample count in the epoch in progress.
    var localSums = [0.0, 0.0, 0.0]
    /// The rest of an epoch after a resume on another world size, and what it was cut from.
    var resumedPlan: EpochPlan?
    var resumedFrom: (world: Int, steps: Int)?
    /// Gradient bytes each rank contributes to every step's allreduce.
    public var allreduceBytesPerStep: Int { exchange.bytesPerStep }
    /// Called after every step that does not end the epoch (checkpoints); the same on every rank.
    public var afterStep: ((Trainer) throws -> Void)?
    /// Stop (cleanly, between steps) once this many steps are done in all; the plan is unchanged.
    /// What the data is, recorded in every checkpoint (`data_set`, `class_names`: one name a line).
    public var dataMetadata: [(String, String)] = []
    public var stopAtStep: Int?
    /// Asked before every step: has this rank been asked to stop (SIGINT/SIGTERM)? The ranks vote
    /// in the step's gradient allreduce, and all stop after the step in which any rank voted.
    public var stopRequest: (() -> Bool)?
    /// A stop request ended the run after `globalStep` (it is not finished; a checkpoint resumes it).
    public private(set) var interrupted = false
    /// Sees (epoch, global sample ids) of every batch this rank trains on (auditing, tests).
    public var sampleLog: ((Int, [Int32]) -> Void)?
    /// The file ids, ascending, of the records the training set is dealt from when some were held
    /// out (`ValidationSplit`); nil when it is every record of the file (0..<totalCount).
    public var recordIDs: [Int32]?
    /// The moving average of the weights, with `configuration.averageDecay`.
    public let average: WeightAverage?
    /// The average scored better than the live weights on validation at the last epoch end (or
    /// there was no validation): checkpoints name it as the weights to use.
    public var preferAverage = true

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
        scheduleBatch = configuration.batchSize * communicator.size
        let augmenter = configuration.augmentation.isIdentity ? nil
            : Augmenter(settings: configuration.augmentation, width: train.width, height: train.height, seed: configuration.seed)
        pipeline = BatchPipeline(dataset: train, batchSize: configuration.batchSize, augmenter: augmenter)
        exchange = GradientExchange(network: network, communicator: communicator, settings: configuration.exchange)
        let store = network.store
        average = configuration.averageDecay.map { WeightAverage(decay: $0, store: store) }
        layerDone = communicator.size > 1 && configuration.exchange.bucketBytes > 0 ? { [exchange] in exchange.layerDone($0) } : nil
        reductionProgress = layerDone == nil ? nil : { [exchange] in exchange.progress() }
        // Every rank starts from rank 0's weights (they are equal by seed already; this makes it a fact).
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.mutableParameterBuffer()), root: 0)
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.bufferBuffer), root: 0)
        average?.parameters = Array(network.store.parameterBuffer)
    }

    public var totalSteps: Int { schedule.totalSteps }
    public var globalBatchSize: Int { configuration.batchSize * communicator.size }

    /// True when every epoch is done, or --max-steps or the stop step is reached.
    public var isFinished: Bool {
        interrupted
            || epoch >= configuration.epochs
            || globalStep >= (configuration.maxSteps ?? Int.max)
            || globalStep >= (stopAtStep ?? Int.max)
    }

    /// The plan of the epoch in progress.
    public func currentPlan() -> EpochPlan { resumedPlan ?? sampler.plan(epoch: epoch) }

    /// Continues the epoch in progress to its end (or until maxSteps, the stop step, or `stepLimit`
    /// more steps). Train loss and accuracy are summed over all ranks. `progress(done, total)` is
    /// called after each step.
    public func runEpoch(stepLimit: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> EpochMetrics {
        let plan = currentPlan()
        var time = TimeBreakdown()
        let start = monotonicSeconds()
        var lr: Float = 0
        if stepInEpoch == 0 { localSums = [0, 0, 0] }
        var last = plan.steps
        if let maxSteps = configuration.maxSteps { last = min(last, stepInEpoch + max(0, maxSteps - globalStep)) }
        if let stopAtStep { last = min(last, stepInEpoch + max(0, stopAtStep - globalStep)) }
        if let stepLimit { last = min(last, stepInEpoch + stepLimit) }
        let first = stepInEpoch
        pipeline.begin(epoch: epoch, batches: (first..<max(first, last)).map { plan.batch($0) },
                       augment: epoch < configuration.epochs - configuration.augmentationOffEpochs)
        var stepsRun = 0
        // The prefetch thread is stopped once on every path: here after the loop, or before a failure leaves.
        do {
            for step in first..<max(first, last) {
                let stopVote = stopRequest?() ?? false
                lr = try trainStep(plan.batch(step), stopVote: stopVote, time: &time)
                stepsRun += 1
                progress?(step + 1, plan.steps)
                if communicator.size > 1 ? exchange.stopVotes > 0 : stopVote {
                    interrupted = true
                    break
                }
                if step + 1 < plan.steps { try afterStep?(self) }
            }
        } catch {
            pipeline.finish()
            throw error
        }
        let seconds = monotonicSeconds() - start
        pipeline.finish()
        time.augmentationBackground = pipeline.backgroundSeconds
        var sums = localSums
        try communicator.allreduceSum(&sums)
        var slowest = [seconds, Double(peakResidentBytesOfThisProcess())]
        try communicator.allreduceMax(&slowest)
        let finishedEpoch = epoch + 1
        if stepInEpoch >= plan.steps {
            epoch += 1
            stepInEpoch = 0
            resumedPlan = nil
            resumedFrom = nil
        }
        return EpochMetrics(epoch: finishedEpoch, step: globalStep, trainLoss: sums[2] > 0 ? sums[0] / sums[2] : 0,
                            trainAccuracy: sums[2] > 0 ? sums[1] / sums[2] : 0, validationLoss: nil, validationAccuracy: nil,
                            imagesPerSecond: Double(stepsRun * globalBatchSize) / max(slowest[0], 1e-9), seconds: slowest[0],
                            learningRate: lr, time: time, worldSize: communicator.size, peakResidentBytes: Int(slowest[1]))
    }

    /// One step: the next prepared batch forward and backward into the gradient arena, the
    /// allreduce (which carries this rank's stop vote), the finiteness check and the update.
    /// Returns the learning rate used.
    private func trainStep(_ samples: ArraySlice<Int32>, stopVote: Bool, time: inout TimeBreakdown) throws -> Float {
        let batch = configuration.batchSize
        let t0 = monotonicSeconds()
        let assembler = pipeline.next()
        let t1 = monotonicSeconds()
        if let sampleLog { sampleLog(epoch, samples.map { train.ids[Int($0)] }) }
        network.store.zeroGradients()
        exchange.beginStep(stop: stopVote)
        // The gradient of the mean over the global batch: the 1/worldSize of the average is folded in.
        let result = network.accumulateGradients(
            input: assembler.input.pointer, labels: assembler.labels, batch: batch,
            context: PassContext(mode: .training, seed: configuration.seed, step: UInt64(globalStep), rank: communicator.rank),
            gradientDenominator: globalBatchSize, labelSmoothing: configuration.labelSmoothing,
            layerDone: layerDone, progress: reductionProgress)
        let t2 = monotonicSeconds()
        // What is left of the reductions after backward: the part communication did not hide.
        if communicator.size > 1 { try exchange.finish() }
        let t3 = monotonicSeconds()
        let lr = schedule.rate(at: samplesConsumed / scheduleBatch)
        // The reduced gradients are the same on every rank, so every rank stops here together;
        // the weights stay those of the last good step.
        guard allFinite(network.store.gradients, network.store.parameterCount) else {
            throw TrainingDiverged(step: globalStep + 1, what: "the gradients", learningRate: lr)
        }
        optimizer.step(learningRate: lr)
        average?.update(from: network.store)
        let t4 = monotonicSeconds()
        time.data += t1 - t0
        time.compute += (t2 - t1) + (t4 - t3)
        time.allreduce += t3 - t2
        globalStep += 1
        stepInEpoch += 1
        samplesConsumed += globalBatchSize
        localSums[0] += result.lossSum
        localSums[1] += Double(result.correct)
        localSums[2] += Double(batch)
        return lr
    }

    /// True when the last `runEpoch` ended its epoch (rather than stopping inside it).
    public var atEpochBoundary: Bool { stepInEpoch == 0 }

    /// Makes BatchNorm running statistics equal on every rank (their mean), as before every
    /// evaluation and checkpoint: each rank saw different batches.
    public func synchronizeBuffers() throws {
        guard communicator.size > 1, network.store.bufferCount > 0 else { return }
        let buffers = network.store.bufferBuffer
        try communicator.allreduceSum(buffers)
        let scale = 1 / Float(communicator.size)
        for i in 0..<buffers.count { buffers[i] *= scale }
    }

    /// Refuses (TrainingDiverged) when a parameter is NaN or infinite (the same on every rank):
    /// called before a checkpoint is written, so none holds such values; `checkpointTensors` checks
    /// the buffers it saves.
    public func checkWeightsAreFinite() throws {
        let store = network.store
        guard allFinite(store.parameters, store.parameterCount) else {
            throw TrainingDiverged(step: globalStep, what: "the weights", learningRate: schedule.rate(at: samplesConsumed / scheduleBatch))
        }
    }

    /// Test loss and accuracy over `test`, split across ranks and reduced; `test` is this rank's part.
    public func evaluate(_ test: Dataset) throws -> Evaluation {
        try synchronizeBuffers()
        // At the training batch size, so evaluation grows no activation buffer (peak memory stays the training step's).
        let part = Evaluation.run(network, on: test, batchSize: configuration.batchSize)
        var sums = [part.lossSum, Double(part.correct), Double(part.count)]
        try communicator.allreduceSum(&sums)
        return Evaluation(lossSum: sums[0], correct: Int(sums[1]), count: Int(sums[2]))
    }

    /// Loss and accuracy of the averaged weights over `data` (this rank's part), after their
    /// BatchNorm statistics are recomputed (`recalibrateAverage`); the live weights are untouched.
    public func evaluateAverage(_ data: Dataset) throws -> Evaluation? {
        guard let average else { return nil }
        try recalibrateAverage()
        let part = average.withAveragedWeights(in: network.store) {
            Evaluation.run(network, on: data, batchSize: configuration.batchSize)
        }
        var sums = [part.lossSum, Double(part.correct), Double(part.count)]
        try communicator.allreduceSum(&sums)
        return Evaluation(lossSum: sums[0], correct: Int(sums[1]), count: Int(sums[2]))
    }

    /// Images (over all ranks) whose batch statistics make the averaged weights' BatchNorm statistics.
    public static let recalibrationImages = 6400

    /// The averaged weights' BatchNorm statistics: the mean batch statistics over about
    /// `recalibrationImages` plain (unaugmented) training images, split across ranks, in an
    /// order keyed by (seed, epoch, rank), then averaged over ranks. A no-op without BatchNorm.
    public func recalibrateAverage() throws {
        guard let average, network.store.bufferCount > 0 else { return }
        let batch = configuration.batchSize
        let batches = max(1, min(train.count / batch, (Trainer.recalibrationImages + globalBatchSize - 1) / globalBatchSize))
        let order = keyedPermutation(count: train.count, seed: configuration.seed, purpose: .batchNormRecalibration,
                                     UInt64(epoch), UInt64(communicator.rank))
        let assembler = BatchAssembler(dataset: train, capacity: batch)
        let count = min(batch, train.count)
        average.withAveragedWeights(in: network.store) {
            network.recomputeBatchNormStatistics(
                batches: batches,
                context: PassContext(mode: .training, seed: configuration.seed, step: UInt64.max / 2, rank: communicator.rank)
            ) { b in
                assembler.assemble(order[(b * count)..<((b + 1) * count)])
                return (assembler.input.pointer, count)
            }
        }
        if communicator.size > 1 {
            try average.buffers.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
            let scale = 1 / Float(communicator.size)
            for i in 0..<average.buffers.count { average.buffers[i] *= scale }
        }
    }

    /// SHA-256 of the parameter and buffer arenas (for comparing ranks and runs).
    public func weightsDigest() -> String {
        var hasher = SHA256()
        hasher.update(UnsafeRawBufferPointer(network.store.parameterBuffer))
        hasher.update(UnsafeRawBufferPointer(network.store.bufferBuffer))
        return hexString(hasher.finalize())
    }
}

/// Training produced a non-finite number: the run stops rather than save or spread it.
public struct TrainingDiverged: Error, CustomStringConvertible, Sendable {
    public let step: Int
    public let what: String
    public let learningRate: Float
    public var description: String {
        "step \(step): \(what) are not finite (NaN or infinity): training diverged. The usual cause is a learning rate "
            + "too high for the model (the rate at this step was \(learningRate)); lower --lr or add --warmup. "
            + "No checkpoint holds the non-finite values"
    }
}

/// True when no value is NaN or infinite: the exponent fields, compared as integers (which vectorises).
public func allFinite(_ values: UnsafePointer<Float>, _ count: Int) -> Bool {
    var largest: UInt32 = 0
    values.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
        for i in 0..<count { largest = max(largest, bits[i] & 0x7f80_0000) }
    }
    return largest != 0x7f80_0000
}
