import Datasets
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that decides what a training run computes.
public struct TrainingConfiguration: Sendable {
    public var model: ModelSpec
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: OptimizerKind
    public var learningRate: Float
    public var schedule: LearningRateSchedule.Kind
    public var warmupSteps: Int
    public var weightDecay: Float
    public var seed: UInt64
    /// Stop after this many steps in all (nil: run every epoch).
    public var maxSteps: Int?

    public init(model: ModelSpec, epochs: Int = 1, batchSize: Int = 64, optimizer: OptimizerKind = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8),
                learningRate: Float = 1e-3, schedule: LearningRateSchedule.Kind = .constant, warmupSteps: Int = 0,
                weightDecay: Float = 0, seed: UInt64 = 1, maxSteps: Int? = nil) {
        self.model = model; self.epochs = epochs; self.batchSize = batchSize; self.optimizer = optimizer
        self.learningRate = learningRate; self.schedule = schedule; self.warmupSteps = warmupSteps
        self.weightDecay = weightDecay; self.seed = seed; self.maxSteps = maxSteps
    }
}

/// One epoch's results, as printed and written to the metrics log.
public struct EpochMetrics: Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var imagesPerSecond: Double
    public var seconds: Double
    public var learningRate: Float

    /// One JSON object on one line.
    public var jsonLine: String {
        var fields = [
            "\"epoch\":\(epoch)", "\"step\":\(step)",
            "\"train_loss\":\(json(trainLoss))", "\"train_accuracy\":\(json(trainAccuracy))",
        ]
        if let testLoss { fields.append("\"test_loss\":\(json(testLoss))") }
        if let testAccuracy { fields.append("\"test_accuracy\":\(json(testAccuracy))") }
        fields += ["\"images_per_second\":\(json(imagesPerSecond))", "\"seconds\":\(json(seconds))",
                   "\"learning_rate\":\(json(Double(learningRate)))"]
        return "{" + fields.joined(separator: ",") + "}"
    }
}

func json(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

/// The training loop of one process: sample, assemble, forward, backward, update.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let network: Network
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    public let train: Dataset
    public let sampler: EpochSampler
    let assembler: BatchAssembler
    public private(set) var globalStep = 0

    public init(configuration: TrainingConfiguration, train: Dataset) {
        self.configuration = configuration
        self.train = train
        network = Network(spec: configuration.model, seed: configuration.seed)
        optimizer = Optimizer(kind: configuration.optimizer, store: network.store, weightDecay: configuration.weightDecay)
        sampler = EpochSampler(localCount: train.count, totalCount: train.totalCount, worldSize: 1,
                               batchSize: configuration.batchSize, seed: configuration.seed, rank: 0)
        let planned = sampler.stepsPerEpoch * configuration.epochs
        schedule = LearningRateSchedule(kind: configuration.schedule, peak: configuration.learningRate,
                                        warmupSteps: configuration.warmupSteps,
                                        totalSteps: min(planned, configuration.maxSteps ?? planned))
        assembler = BatchAssembler(dataset: train, capacity: configuration.batchSize)
    }

    public var totalSteps: Int { schedule.totalSteps }

    /// Runs one epoch (or until maxSteps). `progress(stepInEpoch, stepsInEpoch)` is called after each step.
    public func runEpoch(_ epoch: Int, stepLimit: Int? = nil, progress: ((Int, Int) -> Void)? = nil) -> EpochMetrics {
        let order = sampler.order(epoch: epoch)
        let batch = configuration.batchSize
        var lossSum = 0.0, correct = 0, seen = 0
        let start = monotonicSeconds()
        var lr: Float = 0
        // Steps are numbered globally; an epoch may be entered part-way (a step limit, a resume).
        let epochStart = epoch * sampler.stepsPerEpoch
        let first = max(0, globalStep - epochStart)
        var last = min(sampler.stepsPerEpoch, totalSteps - epochStart)
        if let stepLimit { last = min(last, first + stepLimit) }
        for stepInEpoch in first..<max(first, last) {
            assembler.assemble(order[(stepInEpoch * batch)..<((stepInEpoch + 1) * batch)])
            network.store.zeroGradients()
            let result = network.accumulateGradients(
                input: assembler.input.pointer, labels: assembler.labels, batch: batch,
                context: PassContext(mode: .training, seed: configuration.seed, step: UInt64(globalStep), rank: 0))
            lr = schedule.rate(at: globalStep)
            optimizer.step(learningRate: lr)
            globalStep += 1
            lossSum += result.lossSum
            correct += result.correct
            seen += batch
            progress?(stepInEpoch + 1, sampler.stepsPerEpoch)
        }
        let seconds = monotonicSeconds() - start
        return EpochMetrics(epoch: epoch + 1, step: globalStep, trainLoss: seen > 0 ? lossSum / Double(seen) : 0,
                            trainAccuracy: seen > 0 ? Double(correct) / Double(seen) : 0, testLoss: nil, testAccuracy: nil,
                            imagesPerSecond: Double(seen) / max(seconds, 1e-9), seconds: seconds, learningRate: lr)
    }
}

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
