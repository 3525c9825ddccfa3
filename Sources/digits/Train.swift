import ArgumentParser
import Foundation
import Augmentation
import CStopSignals
import Collective
import Datasets
import NeuralNet
import Training
#if canImport(Glibc)
import Glibc
#endif

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on MNIST, alone or data-parallel under mpirun, evaluating after every epoch.",
        discussion: """
        Alone: digits train --model default --epochs 2
        Data-parallel: mpirun -np 4 digits train --threads 1 …  (every rank gets the same arguments)

        --batch-size is per rank; the global batch is ranks x batch. --lr is the peak rate, used as given unless --lr-scaling linear multiplies it by global batch / --lr-base-batch (Goyal et al. 2017; pair it with --warmup).

        Models: a preset (\(ModelSpec.presets.map(\.name).joined(separator: ", "))) or a spec such as conv32k5p2-bn-relu-pool2-flatten-dense10 (see the README for the tokens).

        Schedules (after --warmup linear warmup steps): constant, step (x --step-factor every --step-every epochs), cosine, onecycle.
        """
    )

    @OptionGroup var data: DataOptions

    @Option(help: "Model preset or spec.")
    var model: String = "default"
    @Option(parsing: .unconditional, help: "Passes over the training set.")
    var epochs: Int = 2
    @Option(parsing: .unconditional, help: "Images per rank per step.")
    var batchSize: Int = 64
    @Option(help: "sgd, nesterov, adam or adamw.")
    var optimizer: OptimizerChoice = .adam
    @Option(parsing: .unconditional, help: "Peak learning rate.")
    var lr: Float = 2e-3
    @Option(help: "none, or linear: multiply --lr by global batch / --lr-base-batch.")
    var lrScaling: LearningRateScaling = .none
    @Option(parsing: .unconditional, help: "The global batch --lr is meant for, with --lr-scaling linear.")
    var lrBaseBatch: Int = 64
    @Option(parsing: .unconditional, help: "Momentum for sgd and nesterov.")
    var momentum: Float = 0.9
    @Option(help: "constant, step, cosine or onecycle.")
    var schedule: ScheduleChoice = .onecycle
    @Option(parsing: .unconditional, help: "With --schedule step: multiply the rate by --step-factor every this many epochs.")
    var stepEvery: Int = 1
    @Option(parsing: .unconditional, help: "With --schedule step: the factor.")
    var stepFactor: Float = 0.5
    @Option(parsing: .unconditional, help: "Linear warmup steps before the schedule.")
    var warmup: Int = 0
    @Option(parsing: .unconditional, help: "Weight decay (L2 for sgd/adam, decoupled for adamw); weights only, not biases or BatchNorm.")
    var weightDecay: Float = 0
    @Option(parsing: .unconditional, help: "Seed of every random choice: initialisation, shards, order, dropout.")
    var seed: UInt64 = 1
    @OptionGroup var kernel: KernelOptions
    @Option(help: "shard: each rank loads only its part of the training set; replicate: every rank loads all of it and the data seen per step does not depend on the number of ranks.")
    var dataPlacement: DataPlacement = .shard
    @Option(help: "Random warps of training images: none, default (rotation=10,scale=0.1,shift=2), or key=value pairs of rotation (degrees), scale (fraction), xyscale (0/1), shift (pixels), shear (degrees), and the probabilities of the appearance variations thickness, blur, lowres, contrast, noise (0-1; docs/robustness.md); unnamed keys take the defaults.")
    var augment: String = "none"
    @Option(help: "Elastic distortion alpha,sigma (Simard et al. 2003 used 34,4), on top of --augment.")
    var elastic: String?
    @Option(help: "Last epochs trained on plain images, whatever --augment and --elastic say (augmentation eased off at the end).")
    var augmentOffEpochs: Int = 0
    @Option(help: "Label smoothing of the training loss: the target is (1 - e) one-hot + e / classes (0: none; 0.1 is usual).")
    var labelSmoothing: Float = 0
    @Option(help: "Also keep an exponential moving average of the weights with this decay (e.g. 0.999), scored beside them with BatchNorm statistics of its own; checkpoints hold both and name the one that scored better on validation.")
    var ema: Float?
    @Option(help: "Training images held out for validation, chosen by --seed (the same for any number of ranks): every epoch is scored on them, and the test set once, at the end. auto: a twelfth (5,000 of MNIST's 60,000); 0: none.")
    var validation: ValidationChoice = .automatic
    @Option(help: "Seed of the validation split (default: --seed; with --seeds, the first of them).")
    var validationSeed: UInt64?
    @Option(help: "Train one model per seed, e.g. 1,2,3 (an ensemble's members), each in <checkpoint-dir>/seed-S, all holding out the same validation images; under mpirun the ranks split into groups that train different members at once. Replaces --seed.")
    var seeds: SeedList = SeedList()
    /// `digits crossval` scores folds on validation only: the test set waits for the real run.
    var scoresTestSet = true
    @Option(parsing: .unconditional, help: "Stop after this many steps in all (the schedule is planned for this many).")
    var maxSteps: Int?
    @Option(help: "Gradients on the wire between ranks: none (Float32) or fp16 (IEEE half with a shared power-of-two scale per bucket: half the bytes, for slow links).")
    var gradientCompression: ExchangeSettings.Compression = .none
    @Option(parsing: .unconditional, help: "Send gradients in buckets of this many KiB, each started while backward still runs (0: one allreduce after backward). The sums are the same either way.")
    var bucketKb: Int = 256
    @Option(help: "Directory for checkpoints (rank 0 writes them).")
    var checkpointDir: String = "checkpoints"
    @Option(parsing: .unconditional, help: "Write a checkpoint every this many steps, besides each epoch end (0: epoch ends only).")
    var checkpointEvery: Int = 500
    @Option(parsing: .unconditional, help: "Checkpoints to keep.")
    var keep: Int = 3
    @Flag(help: "Write no checkpoints.")
    var noCheckpoints = false
    @Flag(help: "Start a new run in a --checkpoint-dir that holds another run's checkpoints, deleting them (without this, such a run is refused).")
    var overwriteCheckpoints = false
    @Option(help: "Continue from a checkpoint: 'latest' (the newest good one in --checkpoint-dir; a bare --resume means this) or a file.")
    var resume: String?
    @Option(help: "Each rank appends 'epoch id id …' per step to FILE.rank<N> (which samples were used; for audits and tests).")
    var recordSamples: String?
    @Option(parsing: .unconditional, help: "Stop cleanly after this many steps in all, writing a checkpoint; unlike --max-steps the plan (schedule) is unchanged.")
    var stopAtStep: Int?
    @Option(help: "Write one JSON line of metrics per epoch to this file (rank 0).")
    var metricsOut: String?
    @Option(help: "At the end, draw this run's curves and time breakdown into this SVG file (needs --metrics-out).")
    var report: String?
    @Flag(help: "Skip evaluation: no validation score per epoch and no test score at the end.")
    var noEval = false
    @Flag(help: "At the end, every rank prints the SHA-256 of its weights (to compare ranks and runs).")
    var digest = false
    @Option(help: "At the end, rank 0 writes the parameter arena to this file as raw little-endian float32.")
    var parametersOut: String?
    @Option(parsing: .unconditional, help: "Under mpirun: stop this rank (and so the job) when a collective makes no progress for this many seconds (a lost host). 0: wait forever.")
    var collectiveTimeout: Double = 30
    @Option(help: "auto (a progress bar when stdout is a terminal and not under mpirun), always, or never.")
    var progress: ProgressDisplay = .auto

    func validate() throws {
        // Upper bounds too: these values are multiplied (epochs by steps per epoch, kilobytes by 1024)
        // before anything else could refuse them.
        if epochs < 1 || epochs > 1_000_000 { throw ValidationError("--epochs must be from 1 to 1,000,000, not \(epochs)") }
        if batchSize < 1 || batchSize > 65_536 { throw ValidationError("--batch-size must be from 1 to 65536 images per rank, not \(batchSize)") }
        if !(lr > 0) || !lr.isFinite { throw ValidationError("--lr must be a positive finite number, not \(lr)") }
        if !(momentum >= 0 && momentum < 1) { throw ValidationError("--momentum must be at least 0 and below 1, not \(momentum)") }
        if !(stepFactor > 0) || !stepFactor.isFinite { throw ValidationError("--step-factor must be a positive finite number, not \(stepFactor)") }
        if stepEvery < 1 || stepEvery > 1_000_000 { throw ValidationError("--step-every must be from 1 to 1,000,000 epochs, not \(stepEvery)") }
        if !(collectiveTimeout >= 0) || !collectiveTimeout.isFinite { throw ValidationError("--collective-timeout must be 0 (wait forever) or a positive number of seconds, not \(collectiveTimeout)") }
        if let maxSteps, maxSteps < 1 || maxSteps > 1_000_000_000 { throw ValidationError("--max-steps must be from 1 to 1,000,000,000, not \(maxSteps)") }
        if bucketKb < 0 || bucketKb > 4_194_304 { throw ValidationError("--bucket-kb must be from 0 to 4194304 (4 GiB), not \(bucketKb)") }
        if warmup < 0 || warmup > 1_000_000_000 { throw ValidationError("--warmup must be from 0 to 1,000,000,000 steps, not \(warmup)") }
        if !(weightDecay >= 0) || !weightDecay.isFinite { throw ValidationError("--weight-decay must be a finite number, 0 or more, not \(weightDecay)") }
        if report != nil && metricsOut == nil { throw ValidationError("--report draws from --metrics-out; give both") }
        if let report, !report.lowercased().hasSuffix(".svg") { throw ValidationError("--report writes an SVG drawing; name the file .svg") }
        if checkpointEvery < 0 { throw ValidationError("--checkpoint-every must be 0 or more, not \(checkpointEvery)") }
        if keep < 1 || keep > 100_000 { throw ValidationError("--keep must be from 1 to 100000 checkpoints, not \(keep)") }
        if let stopAtStep, stopAtStep < 1 { throw ValidationError("--stop-at-step must be at least 1, not \(stopAtStep)") }
        if lrBaseBatch < 1 || lrBaseBatch > 1 << 30 { throw ValidationError("--lr-base-batch must be from 1 to 2^30, not \(lrBaseBatch)") }
        if augmentOffEpochs < 0 || augmentOffEpochs > epochs { throw ValidationError("--augment-off-epochs must be from 0 to --epochs (\(epochs)), not \(augmentOffEpochs)") }
        if !(0..<1).contains(labelSmoothing) { throw ValidationError("--label-smoothing must be at least 0 and below 1, not \(labelSmoothing)") }
        if let ema, !(ema > 0 && ema < 1) { throw ValidationError("--ema must be between 0 and 1 (e.g. 0.999), not \(ema)") }
        if noCheckpoints && overwriteCheckpoints { throw ValidationError("--overwrite-checkpoints replaces checkpoints; it does nothing with --no-checkpoints") }
        do {
            _ = try AugmentationSettings(parsing: augment)
            if let elastic { _ = try AugmentationSettings.parseElastic(elastic) }
        } catch { throw ValidationError("\(error)") }
        do { _ = try ModelSpec.named(model) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        try runAsRank(collectiveTimeout: collectiveTimeout > 0 ? collectiveTimeout : nil) { world in
            try startKernels(threads: kernel.threads)
            // From here a first SIGINT/SIGTERM/SIGUSR1 asks for a stop after the step in progress, with a checkpoint.
            stop_signals_install(world.isRoot ? 1 : 0)
            if seeds.isEmpty {
                _ = try trainRun(world)
            } else {
                try trainMembers(world)
            }
        }
    }

    /// What one run ended with: its last epoch's validation scores (nil when not scored).
    struct Outcome {
        var validation: Double?
        var averageValidation: Double?
    }

    /// One training run on `communicator` (the world, or a group of it), from the checkpoint
    /// directory's lock to the test score.
    func trainRun(_ communicator: Communicator) throws -> Outcome {
        let processStart = monotonicSeconds()
        let root = communicator.isRoot
        // Rank 0 owns the checkpoint directory: locked, proved writable and checked for other
        // runs' files before any data is loaded or any step is trained.
        let checkpoints = try CheckpointSession(communicator: communicator, directory: checkpointDir, keep: keep,
                                                writes: !noCheckpoints, resume: resume, replacingOthers: overwriteCheckpoints,
                                                warning: { printError("digits: warning: \($0)") })
        if root && !checkpoints.replaced.isEmpty {
            print("--overwrite-checkpoints: deleted \(checkpoints.replaced.count) checkpoint(s) of another run from \(checkpointDir)/")
        }
        let (trainer, sets) = try makeTrainer(communicator)
        let metricsFile = root ? try metricsOut.map { try LineWriter(path: $0, append: resume != nil) } : nil
        try restore(checkpoints, into: trainer, communicator: communicator)
        var reportFirstStep = resume != nil && root
        trainer.afterStep = { t in
            if reportFirstStep {
                reportFirstStep = false
                print("first resumed step done \(fixed(monotonicSeconds() - processStart, 3)) s after the process started")
            }
            if checkpointEvery > 0 && t.globalStep % checkpointEvery == 0 { try save(checkpoints, t) }
        }
        if root { printHeader(trainer, communicator: communicator, validationCount: sets.validation?.totalCount) }
        var outcome = Outcome()
        while !trainer.isFinished {
            guard let metrics = try runEpoch(trainer, validation: sets.validation, checkpoints: checkpoints, root: root) else { break }
            if root { printEpoch(metrics) }
            try metricsFile?.write(metrics.jsonLine)
            outcome = Outcome(validation: metrics.validationAccuracy, averageValidation: metrics.averageValidationAccuracy)
        }
        try finish(trainer, checkpoints: checkpoints, communicator: communicator)
        if scoresTestSet { try scoreTestSet(trainer, test: sets.test, metricsFile: metricsFile, root: root) }
        return outcome
    }

    /// `--seeds`: one run per seed, each in `<checkpoint-dir>/seed-S`, all holding out the same
    /// validation images (keyed by `--validation-seed`, else the first seed) so the members can be
    /// scored as an ensemble. Under mpirun the ranks split into as many equal groups as there are
    /// members (at most), and the groups train different members side by side.
    func trainMembers(_ world: Communicator) throws {
        let groups = (1...min(world.size, seeds.count)).last { world.size % $0 == 0 } ?? 1
        let group = try world.split(groups: groups)
        let perGroup = world.size / groups, index = world.rank / perGroup
        var directories = [String]()
        for (n, memberSeed) in seeds.enumerated() {
            let directory = checkpointDir + "/seed-\(memberSeed)"
            directories.append(directory)
            guard n % groups == index else { continue }
            var member = self
            member.seeds = SeedList()
            member.seed = memberSeed
            member.validationSeed = validationSeed ?? seeds[0]
            member.checkpointDir = directory
            member.metricsOut = metricsOut.map { Train.memberPath($0, seed: memberSeed) }
            member.report = report.map { Train.memberPath($0, seed: memberSeed) }
            member.parametersOut = parametersOut.map { Train.memberPath($0, seed: memberSeed) }
            if group.isRoot {
                print("member \(n + 1) of \(seeds.count): seed \(memberSeed), ranks \(index * perGroup)-\(index * perGroup + perGroup - 1) of \(world.size), "
                      + "checkpoints in \(directory)/")
            }
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            _ = try member.trainRun(group)
        }
        try world.waitForAll()
        if world.isRoot {
            print("\(seeds.count) members trained; their ensemble: digits evaluate " + directories.map { "--checkpoint \($0)" }.joined(separator: " "))
        }
    }

    /// `metrics.jsonl` for seed 3 is `metrics.seed-3.jsonl`.
    static func memberPath(_ path: String, seed: UInt64) -> String {
        let ns = path as NSString
        let ext = ns.pathExtension
        return ext.isEmpty ? path + ".seed-\(seed)" : ns.deletingPathExtension + ".seed-\(seed)." + ext
    }

    private func save(_ checkpoints: CheckpointSession, _ trainer: Trainer) throws {
        try checkpoints.save(trainer, extra: [("digits_version", digitsVersion)])
    }

    /// The data of this rank, the configuration every rank checks against the others, and the trainer.
    private func makeTrainer(_ communicator: Communicator) throws -> (Trainer, (validation: Dataset?, test: Dataset?)) {
        let rank = communicator.rank, worldSize = communicator.size
        let placement = dataPlacement
        let shard = placement == .shard ? ShardSpec(rank: rank, worldSize: worldSize, seed: seed) : nil
        // Evaluation always splits the validation and test sets across ranks.
        let evaluationShard = ShardSpec(rank: rank, worldSize: worldSize, seed: seed)
        let split = validation.split(seed: validationSeed ?? seed)
        let set = try IDXSet.load(from: data.dataDir, train: shard.map { .shard($0) } ?? .all,
                                  test: noEval ? .skip : .shard(evaluationShard),
                                  validation: split.map { ($0, noEval ? .skip : .shard(evaluationShard)) })
        guard let train = set.train else { throw CommandError("\(data.dataDir): no training set read") }
        let test = set.test
        if rank == 0, let notice = set.notice { print(notice) }
        let spec = try ModelSpec.named(model, input: Shape(channels: 1, height: set.height, width: set.width),
                                       classes: set.classCount)
        let stepsPerEpoch = EpochSampler.stepsPerEpoch(placement: placement, totalCount: train.totalCount, worldSize: worldSize, batchSize: batchSize)
        if stepsPerEpoch < 1 {
            throw CommandError("a global batch of \(worldSize * batchSize) does not fit in \(train.totalCount) training images")
        }
        let scheduleKind: LearningRateSchedule.Kind
        switch schedule {
        case .step: scheduleKind = .step(every: max(1, stepEvery * stepsPerEpoch), factor: stepFactor)
        case .cosine: scheduleKind = .cosine
        case .onecycle: scheduleKind = .oneCycle(rise: 0.25)
        case .constant: scheduleKind = .constant
        }
        var augmentation = try AugmentationSettings(parsing: augment)
        if let elastic { augmentation.elastic = try AugmentationSettings.parseElastic(elastic) }
        var configuration = TrainingConfiguration(
            model: spec, epochs: epochs, batchSize: batchSize,
            optimizer: optimizer.kind(momentum: momentum),
            learningRate: peakLearningRate(worldSize: worldSize), schedule: scheduleKind, warmupSteps: warmup, weightDecay: weightDecay,
            seed: seed, placement: placement, augmentation: augmentation, maxSteps: maxSteps)
        configuration.exchange = ExchangeSettings(compression: gradientCompression,
                                                  bucketBytes: bucketKb * 1024)
        configuration.labelSmoothing = labelSmoothing
        configuration.averageDecay = ema
        configuration.augmentationOffEpochs = augmentOffEpochs
        configuration.validation = split
        try ConfigurationCheck.verify(configuration.fields + [
            ("training data", train.imagesSHA256 + "/" + train.labelsSHA256),
            ("test data", test.map { $0.imagesSHA256 + "/" + $0.labelsSHA256 } ?? "not evaluated"),
            ("data set", set.identity),
            ("digits version", digitsVersion),
        ], communicator: communicator)
        let trainer = try Trainer(configuration: configuration, train: train, communicator: communicator)
        if let split, let validation = set.validation {
            trainer.recordIDs = try split.split(total: train.totalCount + validation.totalCount, path: train.labelsPath).train
        }
        try checkActivationsFit(trainer)
        trainer.stopAtStep = stopAtStep
        trainer.dataMetadata = [("data_set", set.displayName), ("class_names", set.classNames.joined(separator: "\n"))]
        trainer.stopRequest = { stop_signals_received() != 0 }
        if let recordSamples {
            let log = try LineWriter(path: recordSamples + ".rank\(rank)", append: true)
            trainer.sampleLog = { epoch, ids in try? log.write("\(epoch) " + ids.map(String.init).joined(separator: " ")) }
        }
        return (trainer, (noEval ? nil : set.validation, test))
    }

    private func peakLearningRate(worldSize: Int) -> Float {
        lrScaling == .linear ? lr * Float(worldSize * batchSize) / Float(lrBaseBatch) : lr
    }

    /// Activations, their gradients and the layers' saved inputs grow with the batch: a batch that
    /// cannot fit in memory is refused before the first step tries to allocate it.
    private func checkActivationsFit(_ trainer: Trainer) throws {
        let valuesPerImage = trainer.network.activationValuesPerImage
        let needed = Double(batchSize) * Double(valuesPerImage) * 4 * 3
        let physical = Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE)))
        if physical > 0 && needed > physical / 2 {
            throw CommandError("--batch-size \(batchSize) with this model needs about \(fixed(needed / 1_073_741_824, 1)) GiB of activations per rank, "
                               + "more than half of this machine's \(fixed(physical / 1_073_741_824, 1)) GiB; use a smaller --batch-size")
        }
    }

    /// Restores a resumed run (every rank).
    private func restore(_ checkpoints: CheckpointSession, into trainer: Trainer, communicator: Communicator) throws {
        let start = monotonicSeconds()
        guard let resumed = try checkpoints.restore(trainer) else { return }
        if communicator.isRoot {
            print("resumed from \(resumed.source): epoch \(trainer.epoch + 1), step \(trainer.globalStep), "
                  + "saved by \(resumed.metadata["world_size"] ?? "?") rank(s), now \(communicator.size); "
                  + "\(fixed(monotonicSeconds() - start, 3)) s to restore")
        }
    }

    private func printHeader(_ trainer: Trainer, communicator: Communicator, validationCount: Int?) {
        let configuration = trainer.configuration
        print("model \(configuration.model)  (\(trainer.network.parameterCount) parameters, \(fixed(Double(trainer.network.forwardMultiplyAdds) / 1e6, 2))M multiply-adds per image)")
        print("\(trainer.train.totalCount) training images on \(communicator.size) rank(s) (\(configuration.placement.rawValue)), batch \(batchSize) per rank = \(trainer.globalBatchSize) global, "
              + "\(trainer.sampler.stepsPerEpoch) steps per epoch, \(optimizer) lr \(peakLearningRate(worldSize: communicator.size)) \(schedule)"
              + (warmup > 0 ? " after \(warmup) warmup steps" : "") + ", \(kernel.threads) kernel thread(s) per rank (\(Kernels.isa.rawValue) kernels), seed \(seed)")
        if !configuration.augmentation.isIdentity {
            print("augmentation: \(configuration.augmentation) (training images only; a new draw per sample and epoch)")
        }
        if communicator.size > 1 {
            let buckets = trainer.exchange.bucketCount
            print("allreduce: \(trainer.allreduceBytesPerStep) bytes of gradients per rank per step (\(gradientCompression == .none ? "float32" : gradientCompression.rawValue), \(buckets) bucket\(buckets == 1 ? "" : "s")\(bucketKb > 0 ? ", overlapped with backward" : ""))")
        }
        if !noCheckpoints {
            print("checkpoints: \(checkpointDir)/, " + (checkpointEvery > 0 ? "every \(checkpointEvery) steps and " : "") + "at each epoch end, keeping \(keep)")
        }
        if let validationCount {
            print("validation: \(validationCount) training images held out (chosen by seed \(validationSeed ?? seed)); each epoch is scored on them, "
                  + (scoresTestSet ? "the test set once, after the last epoch" : "the test set not at all (cross-validation)") + (ema == nil ? "" : "; the weight average (ema \(ema ?? 0)) is scored beside the weights"))
        }
        print(pad("epoch", 5) + pad("train loss", 12) + pad("train acc", 11) + pad("val loss", 10) + pad("val acc", 9)
              + (ema == nil ? "" : pad("ema val acc", 13))
              + pad("img/s", 9) + pad("seconds", 9))
    }

    /// One epoch (or the rest of one), its evaluation and checkpoint; nil when the run stopped inside it.
    private func runEpoch(_ trainer: Trainer, validation: Dataset?, checkpoints: CheckpointSession, root: Bool) throws -> EpochMetrics? {
        let epochNumber = trainer.epoch + 1
        let interactive = root && (progress == .always
            || (progress == .auto && standardOutputIsTerminal && !MPICommunicator.launchedByMPI))
        var lastDraw = 0.0
        var metrics = try trainer.runEpoch { done, total in
            guard interactive else { return }
            let now = monotonicSeconds()
            if now - lastDraw < 0.1 && done < total { return }
            lastDraw = now
            let width = 30, filled = width * done / max(1, total)
            drawProgress("epoch \(epochNumber) [" + String(repeating: "#", count: filled)
                         + String(repeating: ".", count: width - filled) + "] \(done)/\(total)")
        }
        if interactive { clearProgress() }
        let reachedMaxSteps = maxSteps.map { trainer.globalStep >= $0 } ?? false
        guard trainer.atEpochBoundary || reachedMaxSteps else {
            // Stopped inside the epoch (--stop-at-step or a stop request): keep the place.
            try save(checkpoints, trainer)
            if root && !trainer.interrupted {
                print("stopped at step \(trainer.globalStep), inside epoch \(epochNumber)" + (noCheckpoints ? "" : "; checkpoint written"))
            }
            return nil
        }
        if let validation {
            let t0 = monotonicSeconds()
            let live = try trainer.evaluate(validation)
            metrics.validationLoss = live.loss
            metrics.validationAccuracy = live.accuracy
            if let average = try trainer.evaluateAverage(validation) {
                metrics.averageValidationLoss = average.loss
                metrics.averageValidationAccuracy = average.accuracy
                // Ties go to the average: it is the smoother of the two.
                trainer.preferAverage = average.correct >= live.correct
            }
            metrics.time.evaluation = monotonicSeconds() - t0
        } else {
            // The average's BatchNorm statistics are measured at every epoch end, scored or not.
            try trainer.recalibrateAverage()
        }
        checkpoints.lastMetrics = metrics.jsonLine
        try save(checkpoints, trainer)
        return metrics
    }

    private func printEpoch(_ metrics: EpochMetrics) {
        print(pad(String(metrics.epoch), 5) + pad(fixed(metrics.trainLoss, 4), 12)
              + pad(fixed(100 * metrics.trainAccuracy, 2) + "%", 11)
              + pad(metrics.validationLoss.map { fixed($0, 4) } ?? "-", 10)
              + pad(metrics.validationAccuracy.map { fixed(100 * $0, 2) + "%" } ?? "-", 9)
              + (ema == nil ? "" : pad(metrics.averageValidationAccuracy.map { fixed(100 * $0, 2) + "%" } ?? "-", 13))
              + pad(fixed(metrics.imagesPerSecond, 0), 9) + pad(fixed(metrics.seconds, 1), 9))
        let t = metrics.time, whole = max(t.total, 1e-9)
        func part(_ name: String, _ seconds: Double) -> String {
            "\(name) \(fixed(seconds, 2)) s (\(fixed(100 * seconds / whole, 1))%)"
        }
        print("      time on rank 0: " + [part("compute", t.compute), part("allreduce", t.allreduce),
                                          part("data", t.data), part("evaluation", t.evaluation)].joined(separator: ", ")
              + (t.augmentationBackground > 0 ? "; augmentation \(fixed(t.augmentationBackground, 2)) s on the prefetch thread, overlapped" : ""))
    }

    /// After the loop: an interrupted run says where its checkpoint is and exits "interrupted";
    /// a finished one averages the BatchNorm statistics and writes what was asked for.
    private func finish(_ trainer: Trainer, checkpoints: CheckpointSession, communicator: Communicator) throws {
        let root = communicator.isRoot
        if trainer.interrupted {
            let signal = stop_signals_received()
            if root {
                let name = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1"][signal] ?? "signal \(signal)"
                print("interrupted by \(name) after step \(trainer.globalStep) (epoch \(trainer.epoch + (trainer.atEpochBoundary ? 0 : 1)))"
                      + (checkpoints.lastSavedPath.map { "; checkpoint \($0) written. To continue, run the same command with --resume" }
                         ?? "; no checkpoint written (--no-checkpoints)"))
            }
            throw Interrupted(signal: signal)
        }
        // Every rank's BatchNorm statistics become their mean (as a checkpoint stores them).
        try trainer.synchronizeBuffers()
        if root, let report, let metricsOut {
            try writeReport(try readMetricsLines(metricsOut), source: metricsOut, to: report)
            print("wrote \(report)")
        }
        if root, !checkpoints.writeSeconds.isEmpty {
            let sorted = checkpoints.writeSeconds.sorted()
            print("checkpoints: \(sorted.count) written, \(checkpoints.bytesPerCheckpoint) bytes each, median \(fixed(sorted[sorted.count / 2] * 1000, 1)) ms to write")
        }
        if digest {
            print("rank \(communicator.rank) weights sha256 \(trainer.weightsDigest())")
        }
        if root, let path = parametersOut {
            try writeDurably(UnsafeRawBufferPointer(trainer.network.store.parameterBuffer), to: path)
        }
    }

    /// The test set, scored once, after the last epoch (never during training: it chooses nothing),
    /// with the live weights and the average's; printed, and the last line of --metrics-out.
    private func scoreTestSet(_ trainer: Trainer, test: Dataset?, metricsFile: LineWriter?, root: Bool) throws {
        let finished = trainer.epoch >= trainer.configuration.epochs || trainer.globalStep >= (maxSteps ?? Int.max)
        guard let test, finished else { return }
        let live = try trainer.evaluate(test)
        let average = try trainer.evaluateAverage(test)
        guard root else { return }
        print("test: \(fixed(100 * live.accuracy, 2))% of \(live.count) images (loss \(fixed(live.loss, 4))), scored once, after the last epoch")
        var fields = ["\"final\":true", "\"epoch\":\(trainer.epoch)", "\"step\":\(trainer.globalStep)", "\"test_images\":\(live.count)",
                      "\"test_loss\":\(jsonNumber(live.loss))", "\"test_accuracy\":\(jsonNumber(live.accuracy))"]
        if let average {
            let chosen = trainer.preferAverage ? "ema" : "raw"
            print("test, weight average: \(fixed(100 * average.accuracy, 2))% (loss \(fixed(average.loss, 4))); "
                  + "checkpoints name the \(chosen == "ema" ? "averaged" : "live") weights as the model"
                  + (trainer.configuration.validation == nil || noEval ? " (no validation to choose by: the average)" : " (chosen on validation)"))
            fields += ["\"ema_test_loss\":\(jsonNumber(average.loss))", "\"ema_test_accuracy\":\(jsonNumber(average.accuracy))",
                       "\"selected_weights\":\"\(chosen)\""]
        }
        try metricsFile?.write("{" + fields.joined(separator: ",") + "}")
    }
}
