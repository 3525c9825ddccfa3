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
    /// Gradient compression and allreduce buckets (must match across ranks; may change on resume).
    public var exchange: ExchangeSettings = ExchangeSettings()

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
         ("max steps", maxSteps.map(String.init) ?? "none"),
         ("gradient compression", exchange.compression.rawValue), ("allreduce bucket bytes", "\(exchange.bucketBytes)")]
    }

    /// Fields a resumed run may change: they alter how gradients travel, not what the run is.
    static let changeableOnResume: Set<String> = ["max steps", "gradient compression", "allreduce bucket bytes"]
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
    /// The largest peak resident memory of any rank so far (bytes).
    public var peakResidentBytes = 0

    /// One JSON object on one line.
    public var jsonLine: String {
        var fields = [
            "\"epoch\":\(epoch)", "\"step\":\(step)", "\"world_size\":\(worldSize)", "\"isa\":\"\(Kernels.isa.rawValue)\"",
            "\"train_loss\":\(json(trainLoss))", "\"train_accuracy\":\(json(trainAccuracy))",
        ]
        if let testLoss { fields.append("\"test_loss\":\(json(testLoss))") }
        if let testAccuracy { fields.append("\"test_accuracy\":\(json(testAccuracy))") }
        fields += ["\"images_per_second\":\(json(imagesPerSecond))", "\"seconds\":\(json(seconds))",
                   "\"learning_rate\":\(json(Double(learningRate)))",
                   "\"compute_seconds\":\(json(time.compute))", "\"allreduce_seconds\":\(json(time.allreduce))",
                   "\"data_seconds\":\(json(time.data))", "\"augmentation_background_seconds\":\(json(time.augmentationBackground))",
                   "\"evaluation_seconds\":\(json(time.evaluation))", "\"peak_rss_bytes\":\(peakResidentBytes)"]
        return "{" + fields.joined(separator: ",") + "}"
    }
}

func json(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

/// This process's peak resident set (getrusage; Linux reports KiB).
public func peakResidentBytesOfThisProcess() -> Int {
    var usage = rusage()
    guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
    return Int(usage.ru_maxrss) * 1024
}

/// The steps of one epoch on one rank: an order over this rank's data and how many batches of it.
public struct EpochPlan: Sendable {
    public let order: [Int32]
    public let steps: Int
    /// Position in `order` of this rank's first sample at step 0, and the stride between steps.
    let start: Int
    let stride: Int
    let batchSize: Int

    public func batch(_ step: Int) -> ArraySlice<Int32> {
        let first = start + step * stride
        return order[first..<(first + batchSize)]
    }
}

/// The data-parallel training loop of one rank: sample from its data, forward and backward
/// into the gradient arena, ONE allreduce of the whole arena, the same update on every rank.
/// With a `SingleProcessCommunicator` it is ordinary single-process training.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let communicator: Communicator
    public let network: Network
    public let optimizer: Optimizer
    public private(set) var schedule: LearningRateSchedule
    public let train: Dataset
    public let sampler: EpochSampler
    let pipeline: BatchPipeline
    /// The per-step gradient allreduce (buckets, compression).
    public let exchange: GradientExchange
    /// Made once, so a step allocates no closure.
    private let layerDone: ((Int) -> Void)?
    private let reductionProgress: (() -> Void)?
    /// Optimizer updates so far (the key of dropout masks).
    public private(set) var globalStep = 0
    /// The epoch in progress (0-based) and the steps of it already taken.
    public private(set) var epoch = 0
    public private(set) var stepInEpoch = 0
    /// Training samples consumed over all ranks; the schedule's position is samples / `scheduleBatch`.
    public private(set) var samplesConsumed = 0
    /// The global batch the schedule was planned with (differs from ours after a resume on another world size).
    public private(set) var scheduleBatch: Int
    /// This rank's loss sum, correct count and sample count in the epoch in progress.
    var localSums = [0.0, 0.0, 0.0]
    /// The rest of an epoch after a resume on another world size, and what it was cut from.
    private var resumedPlan: EpochPlan?
    private var resumedFrom: (world: Int, steps: Int)?
    /// Gradient bytes each rank contributes to every step's allreduce.
    public var allreduceBytesPerStep: Int { exchange.bytesPerStep }
    /// Called after every step that does not end the epoch (checkpoints); the same on every rank.
    public var afterStep: ((Trainer) throws -> Void)?
    /// Stop (cleanly, between steps) once this many steps are done in all; the plan is unchanged.
    public var stopAtStep: Int?
    /// Asked before every step: has this rank been asked to stop (SIGINT/SIGTERM)? The ranks vote
    /// in the step's gradient allreduce, and all stop after the step in which any rank voted.
    public var stopRequest: (() -> Bool)?
    /// A stop request ended the run after `globalStep` (it is not finished; a checkpoint resumes it).
    public private(set) var interrupted = false
    /// Sees (epoch, global sample ids) of every batch this rank trains on (auditing, tests).
    public var sampleLog: ((Int, [Int32]) -> Void)?

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
        layerDone = communicator.size > 1 && configuration.exchange.bucketBytes > 0 ? { [exchange] in exchange.layerDone($0) } : nil
        reductionProgress = layerDone == nil ? nil : { [exchange] in exchange.progress() }
        // Every rank starts from rank 0's weights (they are equal by seed already; this makes it a fact).
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.mutableParameterBuffer()), root: 0)
        try communicator.broadcast(UnsafeMutableRawBufferPointer(network.store.bufferBuffer), root: 0)
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
    public func currentPlan() -> EpochPlan {
        if let resumedPlan { return resumedPlan }
        let order = sampler.order(epoch: epoch)
        switch sampler.placement {
        case .shard:
            return EpochPlan(order: order, steps: sampler.stepsPerEpoch, start: 0, stride: sampler.batchSize, batchSize: sampler.batchSize)
        case .replicate:
            return EpochPlan(order: order, steps: sampler.stepsPerEpoch, start: sampler.rank * sampler.batchSize,
                             stride: sampler.worldSize * sampler.batchSize, batchSize: sampler.batchSize)
        }
    }

    /// Continues the epoch in progress to its end (or until maxSteps, the stop step, or `stepLimit`
    /// more steps). Train loss and accuracy are summed over all ranks. `progress(done, total)` is
    /// called after each step.
    public func runEpoch(stepLimit: Int? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> EpochMetrics {
        let plan = currentPlan()
        let batch = configuration.batchSize
        let gradientDenominator = globalBatchSize   // folds the 1/worldSize of the average into the loss gradient
        var time = TimeBreakdown()
        let start = monotonicSeconds()
        var lr: Float = 0
        if stepInEpoch == 0 { localSums = [0, 0, 0] }
        var last = plan.steps
        if let maxSteps = configuration.maxSteps { last = min(last, stepInEpoch + max(0, maxSteps - globalStep)) }
        if let stopAtStep { last = min(last, stepInEpoch + max(0, stopAtStep - globalStep)) }
        if let stepLimit { last = min(last, stepInEpoch + stepLimit) }
        let first = stepInEpoch
        pipeline.begin(epoch: epoch, batches: (first..<max(first, last)).map { plan.batch($0) })
        defer { pipeline.finish() }
        var stepsRun = 0
        for step in first..<max(first, last) {
            let t0 = monotonicSeconds()
            let assembler = pipeline.next()
            let t1 = monotonicSeconds()
            if let sampleLog { sampleLog(epoch, plan.batch(step).map { train.ids[Int($0)] }) }
            network.store.zeroGradients()
            let stopVote = stopRequest?() ?? false
            exchange.beginStep(stop: stopVote)
            let result = network.accumulateGradients(
                input: assembler.input.pointer, labels: assembler.labels, batch: batch,
                context: PassContext(mode: .training, seed: configuration.seed, step: UInt64(globalStep), rank: communicator.rank),
                gradientDenominator: gradientDenominator, layerDone: layerDone, progress: reductionProgress)
            let t2 = monotonicSeconds()
            // What is left of the reductions after backward: the part communication did not hide.
            if communicator.size > 1 { try exchange.finish() }
            let t3 = monotonicSeconds()
            lr = schedule.rate(at: samplesConsumed / scheduleBatch)
            // The reduced gradients are the same on every rank, so every rank stops here together;
            // the weights stay those of the last good step.
            guard allFinite(network.store.gradients, network.store.parameterCount) else {
                throw TrainingDiverged(step: globalStep + 1, what: "the gradients", learningRate: lr)
            }
            optimizer.step(learningRate: lr)
            let t4 = monotonicSeconds()
            time.data += t1 - t0
            time.compute += (t2 - t1) + (t4 - t3)
            time.allreduce += t3 - t2
            globalStep += 1
            stepInEpoch += 1
            samplesConsumed += globalBatchSize
            stepsRun += 1
            localSums[0] += result.lossSum
            localSums[1] += Double(result.correct)
            localSums[2] += Double(batch)
            progress?(step + 1, plan.steps)
            if communicator.size > 1 ? exchange.stopVotes > 0 : stopVote {
                interrupted = true
                break
            }
            if step + 1 < plan.steps { try afterStep?(self) }
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
                            trainAccuracy: sums[2] > 0 ? sums[1] / sums[2] : 0, testLoss: nil, testAccuracy: nil,
                            imagesPerSecond: Double(stepsRun * globalBatchSize) / max(slowest[0], 1e-9), seconds: slowest[0],
                            learningRate: lr, time: time, worldSize: communicator.size, peakResidentBytes: Int(slowest[1]))
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

    // MARK: checkpoints

    static let scaleTensorName = "exchange.fp16_scales"

    /// Scales and per-rank buffers carry over only to the same world size (another size sums other values).
    private func oldWorldForScales(_ metadata: [String: String]) -> Int { metadata["world_size"].flatMap { Int($0) } ?? 0 }

    static let rankBuffersTensorName = "ranks.buffers"

    /// Tensors of a checkpoint: parameters, and buffers by layer name (BatchNorm running statistics
    /// as the mean over ranks, what evaluation uses), optimizer state per parameter. Collective: every
    /// rank calls it at the same step. Under several ranks each rank's own buffers are saved as well
    /// (`ranks.buffers`, (ranks, bufferCount)), and no rank's live buffers change: so a checkpoint
    /// written at any step leaves the run as it was, and a resume on the same world size continues
    /// bit for bit as if never stopped.
    public func checkpointTensors() throws -> [StoredTensor] {
        let store = network.store
        var tensors = [StoredTensor]()
        for entry in store.parameterEntries {
            tensors.append(StoredTensor(name: entry.name, shape: entry.shape,
                                        values: Array(UnsafeBufferPointer(start: store.parameters + entry.slice.offset, count: entry.slice.count))))
        }
        var buffers = Array(store.bufferBuffer)
        if communicator.size > 1 && store.bufferCount > 0 {
            let perRank = try communicator.allgather(buffers.withUnsafeBytes { Array($0) }).map { bytes in
                bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            guard perRank.allSatisfy({ $0.count == store.bufferCount }) else {
                throw CheckpointError("<checkpoint>", "the ranks hold different numbers of buffer values")
            }
            // The mean in rank order, as `synchronizeBuffers` computes it.
            var sums = perRank[0]
            for r in 1..<perRank.count { for i in 0..<sums.count { sums[i] += perRank[r][i] } }
            let scale = 1 / Float(communicator.size)
            buffers = sums.map { $0 * scale }
            tensors.append(StoredTensor(name: Trainer.rankBuffersTensorName, shape: [communicator.size, store.bufferCount],
                                        values: perRank.flatMap { $0 }))
        }
        guard allFinite(buffers, buffers.count) else {
            throw TrainingDiverged(step: globalStep, what: "the BatchNorm running statistics", learningRate: schedule.rate(at: samplesConsumed / scheduleBatch))
        }
        for entry in store.bufferEntries {
            tensors.append(StoredTensor(name: entry.name, shape: entry.shape,
                                        values: Array(buffers[entry.slice.offset..<(entry.slice.offset + entry.slice.count)])))
        }
        for (stateName, buffer) in optimizer.stateTensors {
            for entry in store.parameterEntries {
                tensors.append(StoredTensor(name: stateName + "." + entry.name, shape: entry.shape,
                                            values: Array(UnsafeBufferPointer(start: buffer.pointer + entry.slice.offset, count: entry.slice.count))))
            }
        }
        if exchange.settings.compression == .fp16 {
            // So a resumed run compresses its first step exactly as the uninterrupted run would.
            tensors.append(StoredTensor(name: Trainer.scaleTensorName, shape: [exchange.bucketCount], values: exchange.scaleTensor))
        }
        return tensors
    }

    /// Everything a checkpoint must hold besides tensors. Collective: every rank calls it at the same step.
    public func checkpointMetadata(extra: [(String, String)]) throws -> [String: String] {
        let perRank = try communicator.allgather(Array(exactString(localSums).utf8)).map { String(decoding: $0, as: UTF8.self) }
        var metadata: [String: String] = [
            "format_version": CheckpointStore.formatVersion,
            "train_data_sha256": train.imagesSHA256 + "/" + train.labelsSHA256,
            "model": configuration.model.description,
            "epoch": String(epoch),
            "step_in_epoch": String(stepInEpoch),
            "global_step": String(globalStep),
            "samples_consumed": String(samplesConsumed),
            "schedule_batch": String(scheduleBatch),
            "schedule_total_steps": String(schedule.totalSteps),
            "world_size": String(communicator.size),
            "batch_size_per_rank": String(configuration.batchSize),
            "optimizer_steps": String(optimizer.stepCount),
            "epoch_sums_per_rank": perRank.joined(separator: ";"),
            "parameter_count": String(network.parameterCount),
        ]
        if let resumedFrom {
            metadata["epoch_remainder_of_world"] = String(resumedFrom.world)
            metadata["epoch_remainder_after_steps"] = String(resumedFrom.steps)
        }
        for (name, value) in configuration.fields { metadata["config." + name] = value }
        for (name, value) in extra { metadata[name] = value }
        return metadata
    }

    /// Restores tensors and position from a verified checkpoint. Every name, shape and
    /// hyperparameter must fit this run; a different world size is allowed (see `resumeOrder`).
    public func restore(tensors: [StoredTensor], metadata: [String: String], path: String) throws {
        func need(_ key: String) throws -> String {
            guard let v = metadata[key] else { throw CheckpointError(path, "metadata has no \(key)") }
            return v
        }
        let dataDigest = train.imagesSHA256 + "/" + train.labelsSHA256
        let stored = try need("train_data_sha256")
        if stored != dataDigest {
            throw CheckpointError(path, "was trained on data with checksums \(stored); this run reads \(dataDigest)")
        }
        let model = try need("model")
        guard model == configuration.model.description else {
            throw CheckpointError(path, "holds model '\(model)', but this run builds '\(configuration.model.description)'")
        }
        for (name, value) in configuration.fields where !TrainingConfiguration.changeableOnResume.contains(name) {
            let stored = try need("config." + name)
            if stored != value { throw CheckpointError(path, "was trained with \(name) '\(stored)', this run has '\(value)'") }
        }
        var byName = [String: StoredTensor]()
        for t in tensors { byName[t.name] = t }
        let store = network.store
        func copy(_ name: String, _ shape: [Int], into target: UnsafeMutablePointer<Float>) throws {
            guard let t = byName[name] else { throw CheckpointError(path, "tensor \(name) is missing") }
            guard t.shape == shape else { throw CheckpointError(path, "tensor \(name) has shape \(t.shape), the model needs \(shape)") }
            t.values.withUnsafeBufferPointer { target.update(from: $0.baseAddress!, count: $0.count) }
        }
        for e in store.parameterEntries { try copy(e.name, e.shape, into: store.mutableParameters() + e.slice.offset) }
        for e in store.bufferEntries { try copy(e.name, e.shape, into: store.buffers + e.slice.offset) }
        for (stateName, buffer) in optimizer.stateTensors {
            for e in store.parameterEntries { try copy(stateName + "." + e.name, e.shape, into: buffer.pointer + e.slice.offset) }
        }
        if let scales = byName[Trainer.scaleTensorName], communicator.size == oldWorldForScales(metadata) {
            exchange.restoreScales(scales.values)
        }
        // On the same world size each rank takes back its own running statistics (see checkpointTensors).
        if let perRank = byName[Trainer.rankBuffersTensorName], communicator.size == oldWorldForScales(metadata) {
            guard perRank.shape == [communicator.size, store.bufferCount] else {
                throw CheckpointError(path, "tensor \(Trainer.rankBuffersTensorName) has shape \(perRank.shape), this run needs \([communicator.size, store.bufferCount])")
            }
            perRank.values.withUnsafeBufferPointer {
                store.buffers.update(from: $0.baseAddress! + communicator.rank * store.bufferCount, count: store.bufferCount)
            }
        }
        guard let steps = Int(try need("optimizer_steps")), let step = Int(try need("global_step")),
              let oldWorld = Int(try need("world_size")), let savedEpoch = Int(try need("epoch")),
              let savedStepInEpoch = Int(try need("step_in_epoch")), let consumed = Int(try need("samples_consumed")),
              let savedScheduleBatch = Int(try need("schedule_batch")), let savedTotal = Int(try need("schedule_total_steps")),
              oldWorld > 0, savedScheduleBatch > 0 else {
            throw CheckpointError(path, "metadata has a malformed step count")
        }
        let sums = try need("epoch_sums_per_rank").split(separator: ";").map { exactDoubles(String($0)) }
        guard sums.count == oldWorld, sums.allSatisfy({ $0?.count == 3 }) else {
            throw CheckpointError(path, "metadata epoch_sums_per_rank does not match world size \(oldWorld)")
        }
        optimizer.stepCount = steps
        globalStep = step
        epoch = savedEpoch
        stepInEpoch = savedStepInEpoch
        samplesConsumed = consumed
        scheduleBatch = savedScheduleBatch
        schedule = LearningRateSchedule(kind: schedule.kind, peak: schedule.peak, warmupSteps: schedule.warmupSteps, totalSteps: savedTotal)
        let remainderWorld = metadata["epoch_remainder_of_world"].flatMap { Int($0) }
        let remainderSteps = metadata["epoch_remainder_after_steps"].flatMap { Int($0) }
        if oldWorld == communicator.size {
            localSums = sums[communicator.rank]!
            if let remainderWorld, let remainderSteps {
                resumedPlan = try remainderPlan(oldWorld: remainderWorld, epoch: savedEpoch, stepsTaken: remainderSteps)
                resumedFrom = (remainderWorld, remainderSteps)
            }
        } else if remainderWorld != nil && savedStepInEpoch > 0 {
            throw CheckpointError(path, "was taken inside an epoch that had itself been resumed on another world size; "
                                  + "resume it on \(oldWorld) rank(s), or from a checkpoint at an epoch boundary")
        } else {
            // The epoch's totals so far travel on rank 0; the other ranks start from zero.
            let totals = sums.reduce([0.0, 0.0, 0.0]) { acc, s in zip(acc, s!).map { $0 + $1 } }
            localSums = communicator.isRoot ? totals : [0, 0, 0]
            if savedStepInEpoch > 0 {
                resumedPlan = try remainderPlan(oldWorld: oldWorld, epoch: savedEpoch, stepsTaken: savedStepInEpoch)
                resumedFrom = (oldWorld, savedStepInEpoch)
                stepInEpoch = 0
            }
        }
    }

    /// The rest of an interrupted epoch on a new world size: exactly the samples the old ranks
    /// had not yet used, dealt to the new ranks; each new rank uses only the ones in its own
    /// data, and all take the same number of steps (the few that do not fill a step are left
    /// for the next epoch). No sample is used twice in the epoch.
    func remainderPlan(oldWorld: Int, epoch: Int, stepsTaken: Int) throws -> EpochPlan {
        let total = train.totalCount, b = configuration.batchSize, seed = configuration.seed
        let newWorld = communicator.size
        switch configuration.placement {
        case .replicate:
            // One permutation for the epoch; the old world used its first stepsTaken·oldWorld·b positions.
            let order = keyedPermutation(count: total, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64.max)
            let used = stepsTaken * oldWorld * b
            let steps = (total - used) / (newWorld * b)
            return EpochPlan(order: order, steps: steps, start: used + communicator.rank * b, stride: newWorld * b, batchSize: b)
        case .shard:
            var consumed = [Bool](repeating: false, count: total)
            for r in 0..<oldWorld {
                let ids = try ShardSpec(rank: r, worldSize: oldWorld, seed: seed).indices(sampleCount: total)
                let order = keyedPermutation(count: ids.count, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64(r))
                for position in 0..<min(order.count, stepsTaken * b) { consumed[Int(ids[Int(order[position])])] = true }
            }
            // Remaining counts of every new rank decide the common step count.
            var fewest = Int.max
            for r in 0..<newWorld {
                let ids = try ShardSpec(rank: r, worldSize: newWorld, seed: seed).indices(sampleCount: total)
                fewest = min(fewest, ids.reduce(0) { $0 + (consumed[Int($1)] ? 0 : 1) })
            }
            // This rank's remaining local indices, in a fresh order keyed by (seed, epoch, rank, old world).
            var remaining = [Int32]()
            for (local, id) in train.ids.enumerated() where !consumed[Int(id)] { remaining.append(Int32(local)) }
            let shuffle = keyedPermutation(count: remaining.count, seed: seed, purpose: .epochShuffle, UInt64(epoch),
                                           UInt64(communicator.rank) | (UInt64(oldWorld) << 32))
            let order = shuffle.map { remaining[Int($0)] }
            return EpochPlan(order: order, steps: fewest / b, start: 0, stride: b, batchSize: b)
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

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
