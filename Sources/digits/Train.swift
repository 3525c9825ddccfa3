import ArgumentParser
import Datasets
import NeuralNet
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on MNIST and evaluate it on the test set after every epoch.",
        discussion: """
        Models: a preset (\(ModelSpec.presets.map(\.name).joined(separator: ", "))) or a spec such as
        conv32k5p2-bn-relu-pool2-flatten-dense10 (see the README for the tokens).
        Schedules: constant, step (x0.1 at 50% and 75% of the steps... see --step-every), cosine, onecycle;
        each after an optional linear warmup of --warmup steps.
        """
    )

    @OptionGroup var data: DataOptions

    @Option(help: "Model preset or spec.")
    var model: String = "default"
    @Option(help: "Passes over the training set.")
    var epochs: Int = 2
    @Option(help: "Images per step.")
    var batchSize: Int = 64
    @Option(help: "sgd, nesterov, adam or adamw.")
    var optimizer: String = "adam"
    @Option(help: "Peak learning rate.")
    var lr: Float = 2e-3
    @Option(help: "Momentum for sgd and nesterov.")
    var momentum: Float = 0.9
    @Option(help: "constant, step, cosine or onecycle.")
    var schedule: String = "onecycle"
    @Option(help: "With --schedule step: multiply the rate by --step-factor every this many epochs.")
    var stepEvery: Int = 1
    @Option(help: "With --schedule step: the factor.")
    var stepFactor: Float = 0.5
    @Option(help: "Linear warmup steps before the schedule.")
    var warmup: Int = 0
    @Option(help: "Weight decay (L2 for sgd/adam, decoupled for adamw); weights only, not biases or BatchNorm.")
    var weightDecay: Float = 0
    @Option(help: "Seed of every random choice: initialisation, shards, order, dropout.")
    var seed: UInt64 = 1
    @Option(help: "BLAS threads in this process.")
    var threads: Int = 1
    @Option(help: "Stop after this many steps in all.")
    var maxSteps: Int?
    @Option(help: "Write one JSON line of metrics per epoch to this file.")
    var metricsOut: String?
    @Flag(help: "Skip evaluating on the test set after each epoch.")
    var noEval = false

    func validate() throws {
        if epochs < 1 { throw ValidationError("--epochs must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if !(lr > 0) { throw ValidationError("--lr must be positive") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let maxSteps, maxSteps < 1 { throw ValidationError("--max-steps must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup must be 0 or more") }
        if weightDecay < 0 { throw ValidationError("--weight-decay must be 0 or more") }
        if OptimizerKind.named(optimizer) == nil { throw ValidationError("--optimizer must be sgd, nesterov, adam or adamw, not '\(optimizer)'") }
        if !["constant", "step", "cosine", "onecycle"].contains(schedule) {
            throw ValidationError("--schedule must be constant, step, cosine or onecycle, not '\(schedule)'")
        }
    }

    func run() throws {
        try reportingErrors {
            Kernels.setThreads(threads)
            let spec = try ModelSpec.named(model)
            let train = try MNIST.load(.train, from: data.dataDir)
            let test = noEval ? nil : try MNIST.load(.test, from: data.dataDir)
            let metricsFile = try metricsOut.map { try LineWriter(path: $0) }

            let steps = (train.totalCount / 1) / batchSize
            let scheduleKind: LearningRateSchedule.Kind
            switch schedule {
            case "step": scheduleKind = .step(every: max(1, stepEvery * steps), factor: stepFactor)
            case "cosine": scheduleKind = .cosine
            case "onecycle": scheduleKind = .oneCycle(rise: 0.25)
            default: scheduleKind = .constant
            }
            let configuration = TrainingConfiguration(
                model: spec, epochs: epochs, batchSize: batchSize,
                optimizer: OptimizerKind.named(optimizer, momentum: momentum) ?? .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8),
                learningRate: lr, schedule: scheduleKind, warmupSteps: warmup, weightDecay: weightDecay,
                seed: seed, maxSteps: maxSteps)
            let trainer = Trainer(configuration: configuration, train: train)
            print("model \(spec)  (\(trainer.network.parameterCount) parameters, \(fixed(Double(trainer.network.forwardMultiplyAdds) / 1e6, 2))M multiply-adds per image)")
            print("\(train.count) training images, batch \(batchSize), \(trainer.sampler.stepsPerEpoch) steps per epoch, \(optimizer) lr \(lr) \(schedule), \(threads) BLAS thread(s), seed \(seed)")
            print(pad("epoch", 5) + pad("train loss", 12) + pad("train acc", 11) + pad("test loss", 11) + pad("test acc", 10)
                  + pad("img/s", 9) + pad("seconds", 9))
            let interactive = standardOutputIsTerminal
            for epoch in 0..<epochs {
                if trainer.globalStep >= trainer.totalSteps { break }
                var lastDraw = 0.0
                var metrics = trainer.runEpoch(epoch) { done, total in
                    guard interactive else { return }
                    let now = monotonicSeconds()
                    if now - lastDraw < 0.1 && done < total { return }
                    lastDraw = now
                    let width = 30, filled = width * done / max(1, total)
                    drawProgress("epoch \(epoch + 1) [" + String(repeating: "#", count: filled)
                                 + String(repeating: ".", count: width - filled) + "] \(done)/\(total)")
                }
                if interactive { clearProgress() }
                if let test {
                    let evaluation = Evaluation.run(trainer.network, on: test)
                    metrics.testLoss = evaluation.loss
                    metrics.testAccuracy = evaluation.accuracy
                }
                print(pad(String(metrics.epoch), 5) + pad(fixed(metrics.trainLoss, 4), 12)
                      + pad(fixed(100 * metrics.trainAccuracy, 2) + "%", 11)
                      + pad(metrics.testLoss.map { fixed($0, 4) } ?? "-", 11)
                      + pad(metrics.testAccuracy.map { fixed(100 * $0, 2) + "%" } ?? "-", 10)
                      + pad(fixed(metrics.imagesPerSecond, 0), 9) + pad(fixed(metrics.seconds, 1), 9))
                try metricsFile?.write(metrics.jsonLine)
            }
        }
    }
}
