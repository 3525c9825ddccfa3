import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// Evaluating on the validation set (and the weight average's BatchNorm statistics), with the reductions.
    public var evaluation = 0.0
    public var total: Double { compute + allreduce + data + evaluation }
}

/// One epoch's results, as printed and written to the metrics log.
public struct EpochMetrics: Sendable {
    public var epoch: Int
    public var step: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    /// Scored on the held-out validation images (never the test set, which is scored once, at the end).
    public var validationLoss: Double?
    public var validationAccuracy: Double?
    /// The same for the moving average of the weights, when the run keeps one.
    public var averageValidationLoss: Double?
    public var averageValidationAccuracy: Double?
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
        if let validationLoss { fields.append("\"validation_loss\":\(json(validationLoss))") }
        if let validationAccuracy { fields.append("\"validation_accuracy\":\(json(validationAccuracy))") }
        if let averageValidationLoss { fields.append("\"ema_validation_loss\":\(json(averageValidationLoss))") }
        if let averageValidationAccuracy { fields.append("\"ema_validation_accuracy\":\(json(averageValidationAccuracy))") }
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

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
