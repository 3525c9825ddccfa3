import Augmentation
import Datasets
import NeuralNet

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
    /// Label smoothing ε of the training loss (0: the one-hot label).
    public var labelSmoothing: Float = 0
    /// Keep an exponential moving average of the weights with this decay (nil: none).
    public var averageDecay: Float?
    /// The last this many epochs train on plain images, whatever `augmentation` says.
    public var augmentationOffEpochs = 0
    /// Which records of the training file are held out for validation (nil: none; the trainer
    /// only sees the rest either way, this records what was held out).
    public var validation: ValidationSplit?

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
         ("gradient compression", exchange.compression.rawValue), ("allreduce bucket bytes", "\(exchange.bucketBytes)"),
         ("label smoothing", "\(labelSmoothing)"), ("weight average", averageDecay.map { "ema \($0)" } ?? "none"),
         ("augmentation off for the last epochs", "\(augmentationOffEpochs)"),
         ("validation split", validation?.description ?? "none")]
    }

    /// What a checkpoint written before a field existed meant by it.
    static let valuesBeforeFieldExisted: [String: String] = [
        "label smoothing": "0.0", "weight average": "none", "augmentation off for the last epochs": "0", "validation split": "none",
    ]

    /// Fields a resumed run may change: they alter how gradients travel, not what the run is.
    static let changeableOnResume: Set<String> = ["max steps", "gradient compression", "allreduce bucket bytes"]
}
