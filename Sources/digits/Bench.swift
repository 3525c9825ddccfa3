import ArgumentParser
import Augmentation
import Datasets
import NeuralNet
import Training
import CHeapStats
import CKernels
import Collective
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training and inference speed of a model on MNIST batches; prints one result line.",
        discussion: """
        Trains --steps steps after --warmup-steps (not timed) and reports images/s, achieved GFLOP/s
        (training counted as 3x the forward multiply-adds x 2), and the heap bytes in use and resident
        memory before and after the timed steps: equal heap bytes mean the steady-state step allocates nothing.
        """
    )

    @OptionGroup var data: DataOptions
    @Option(parsing: .unconditional, help: "Model preset or spec.") var model: String = "reference"
    @Option(parsing: .unconditional, help: "Images per step.") var batchSize: Int = 64
    @OptionGroup var kernel: KernelOptions
    var threads: Int { kernel.threads }
    @Option(parsing: .unconditional, help: "Timed training steps.") var steps: Int = 200
    @Option(parsing: .unconditional, help: "Untimed steps first.") var warmupSteps: Int = 20
    @Option(help: "Also time inference: batches of this size over the test set (0: skip).") var inferenceBatch: Int = 0
    @Flag(help: "Print the result as JSON.") var json = false
    @Option(help: "Also time augmenting one batch (settings as for train --augment) against one training step.")
    var augment: String?
    @Option(parsing: .unconditional, help: "Instead of a model, time an in-place allreduce of this many floats under mpirun (rank 0 reports).")
    var allreduceFloats: Int?
    @Option(parsing: .unconditional, help: "Instead of a model, time a square sgemm of this size (the GEMM ceiling of the kernel set in use).")
    var gemmSize: Int?
    @Flag(help: "Instead of a model, measure the fused multiply-add peak of --threads threads with the kernel set in use.")
    var fmaPeak = false
    @Option(parsing: .unconditional, help: "Also time this many single-image forward passes (evaluation mode) and report the median latency.")
    var latencyRuns: Int = 0

    func validate() throws {
        // Without these a zero batch stops in the trainer, --steps 0 has no median, and a negative
        // count of steps waits forever for a step the plan does not have.
        if steps < 1 || steps > 1_000_000_000 { throw ValidationError("--steps must be from 1 to 1,000,000,000, not \(steps)") }
        if warmupSteps < 0 || warmupSteps > 1_000_000_000 { throw ValidationError("--warmup-steps must be from 0 to 1,000,000,000, not \(warmupSteps)") }
        if batchSize < 1 || batchSize > 65_536 { throw ValidationError("--batch-size must be from 1 to 65536 images, not \(batchSize)") }
    }

    func run() throws {
        if let count = allreduceFloats {
            try timeAllreduce(floats: count)
            return
        }
        try reportingErrors {
            try startKernels(threads: threads)
            if fmaPeak {
                let gflops = ck_fma_peak_gflops(1.0)
                print(json ? "{\"threads\":\(threads),\"fma_gflops\":\(gflops),\"isa\":\"\(Kernels.isa.rawValue)\"}"
                           : "fused multiply-add peak, \(Kernels.isa.rawValue), \(threads) thread(s): \(fixed(gflops, 1)) GFLOP/s")
            } else if let n = gemmSize {
                let gflops = measureGEMM(size: n)
                print(json ? "{\"gemm_size\":\(n),\"threads\":\(threads),\"gflops\":\(gflops),\"isa\":\"\(Kernels.isa.rawValue)\"}"
                           : "sgemm \(n)x\(n)x\(n), \(Kernels.isa.rawValue), \(threads) thread(s): \(fixed(gflops, 1)) GFLOP/s")
            } else {
                printModelResult(try measureModel())
            }
        }
    }

    /// --steps in-place allreduces of `count` floats after 5 untimed ones, each started together
    /// (a barrier); rank 0 prints the median over calls of the slowest rank's time.
    func timeAllreduce(floats count: Int) throws {
        try runAsRank { communicator in
            guard count > 0 else { throw CommandError("--allreduce-floats must be positive") }
            var buffer = [Float](repeating: 1, count: count)
            var slowest = [Double]()
            for round in 0..<(steps + 5) {
                try communicator.barrier()
                let t0 = monotonicSeconds()
                try buffer.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
                if round >= 5 { slowest.append(monotonicSeconds() - t0) }
            }
            try slowest.withUnsafeMutableBufferPointer { try communicator.allreduceMax($0) }
            guard communicator.isRoot else { return }
            let seconds = median(slowest)
            let bytes = count * 4
            print(json ? "{\"ranks\":\(communicator.size),\"bytes\":\(bytes),\"median_seconds\":\(seconds)}"
                       : "allreduce of \(bytes) bytes on \(communicator.size) rank(s): median \(fixed(seconds * 1000, 2)) ms over \(steps) calls")
        }
    }

    /// What the model bench measured: the fields of its result line.
    struct ModelMeasurement {
        var imagesPerSecond = 0.0
        var flopsPerSecond = 0.0
        var flopPerImage = 0.0
        var stepMilliseconds = 0.0
        var heapBefore = 0, heapAfter = 0
        var rssBefore = 0, rssAfter = 0
        var augmentMilliseconds = 0.0
        var inferenceImagesPerSecond = 0.0
        var latencyMilliseconds = 0.0
        var peakRSS = 0
    }

    /// Trains --model on MNIST batches, then times what the options ask for besides.
    func measureModel() throws -> ModelMeasurement {
        let spec = try ModelSpec.named(model)
        let train = try MNIST.load(.train, from: data.dataDir, verify: false)
        let configuration = TrainingConfiguration(model: spec, epochs: 1000, batchSize: batchSize, learningRate: 1e-3, seed: 1,
                                                  maxSteps: warmupSteps + steps)
        let trainer = try Trainer(configuration: configuration, train: train)
        var measured = try timeTraining(trainer)
        if let augment { measured.augmentMilliseconds = try timeAugmentation(augment, train: train, trainer: trainer) }
        if inferenceBatch > 0 { measured.inferenceImagesPerSecond = try timeInference(trainer.network) }
        if latencyRuns > 0 { measured.latencyMilliseconds = medianLatencyMilliseconds(trainer.network) }
        measured.peakRSS = peakResidentBytesOfThisProcess()
        return measured
    }

    /// --steps training steps after --warmup-steps untimed ones, with the heap and resident bytes
    /// just before and after the timed steps.
    func timeTraining(_ trainer: Trainer) throws -> ModelMeasurement {
        func runSteps(_ count: Int) throws {
            let target = trainer.globalStep + count
            while trainer.globalStep < target {
                _ = try trainer.runEpoch(stepLimit: target - trainer.globalStep)
            }
        }
        try runSteps(warmupSteps)
        var measured = ModelMeasurement()
        measured.heapBefore = heapBytesInUse()
        measured.rssBefore = residentBytes()
        let start = monotonicSeconds()
        try runSteps(steps)
        let seconds = monotonicSeconds() - start
        measured.heapAfter = heapBytesInUse()
        measured.rssAfter = residentBytes()
        measured.imagesPerSecond = Double(steps * batchSize) / seconds
        measured.flopsPerSecond = Double(trainer.network.forwardMultiplyAdds) * 2 * 3 * measured.imagesPerSecond
        measured.flopPerImage = Double(trainer.network.forwardMultiplyAdds) * 6
        measured.stepMilliseconds = seconds / Double(steps) * 1000
        return measured
    }

    /// Milliseconds to assemble and augment one batch, the mean over 200 batches of epoch 0.
    func timeAugmentation(_ settings: String, train: Dataset, trainer: Trainer) throws -> Double {
        let augmenter = Augmenter(settings: try AugmentationSettings(parsing: settings), seed: 1)
        let assembler = BatchAssembler(dataset: train, capacity: batchSize)
        let plan = trainer.sampler.plan(epoch: 0)
        let rounds = 200
        let t0 = monotonicSeconds()
        for round in 0..<rounds {
            assembler.assemble(plan.batch(round % plan.steps), augmenter: augmenter, epoch: 0)
        }
        return (monotonicSeconds() - t0) / Double(rounds) * 1000
    }

    /// Test-set images per second evaluated in batches of --inference-batch (one untimed pass first).
    func timeInference(_ network: Network) throws -> Double {
        let test = try MNIST.load(.test, from: data.dataDir, verify: false)
        _ = Evaluation.run(network, on: test, batchSize: inferenceBatch)
        let t0 = monotonicSeconds()
        _ = Evaluation.run(network, on: test, batchSize: inferenceBatch)
        return Double(test.count) / (monotonicSeconds() - t0)
    }

    /// The median of --latency-runs single-image forward passes, after 20 untimed ones.
    func medianLatencyMilliseconds(_ network: Network) -> Double {
        // One test-set-like image through the network in evaluation mode, as `digits predict` does.
        let image = FloatBuffer(capacity: 784)
        for i in 0..<784 { image.pointer[i] = Float(i % 29) / 29 }
        var times = [Double]()
        for run in 0..<(latencyRuns + 20) {
            let t0 = monotonicSeconds()
            _ = network.forward(image.pointer, batch: 1, context: PassContext(mode: .evaluation))
            if run >= 20 { times.append(monotonicSeconds() - t0) }
        }
        return median(times) * 1000
    }

    /// One JSON object, or a line of training speed with a line for each extra measurement.
    func printModelResult(_ measured: ModelMeasurement) {
        let isa = Kernels.isa.rawValue
        if json {
            print("{\"model\":\"\(model)\",\"latency_ms\":\(measured.latencyMilliseconds),\"flop_per_image\":\(measured.flopPerImage),\"peak_rss\":\(measured.peakRSS),\"batch\":\(batchSize),\"threads\":\(threads),\"steps\":\(steps),\"isa\":\"\(isa)\","
                  + "\"images_per_second\":\(measured.imagesPerSecond),\"gflops\":\(measured.flopsPerSecond / 1e9),\"inference_images_per_second\":\(measured.inferenceImagesPerSecond),"
                  + "\"step_ms\":\(measured.stepMilliseconds),\"augment_batch_ms\":\(measured.augmentMilliseconds),"
                  + "\"heap_before\":\(measured.heapBefore),\"heap_after\":\(measured.heapAfter),\"rss_before\":\(measured.rssBefore),\"rss_after\":\(measured.rssAfter)}")
            return
        }
        print("\(model) batch \(batchSize) threads \(threads) \(isa): \(fixed(measured.imagesPerSecond, 0)) images/s training, "
              + "\(fixed(measured.flopsPerSecond / 1e9, 1)) GFLOP/s" + (inferenceBatch > 0 ? ", \(fixed(measured.inferenceImagesPerSecond, 0)) images/s inference" : ""))
        if augment != nil {
            let share = 100 * measured.augmentMilliseconds / measured.stepMilliseconds
            print("augmenting one batch of \(batchSize): \(fixed(measured.augmentMilliseconds, 3)) ms = \(fixed(share, 1))% of a \(fixed(measured.stepMilliseconds, 2)) ms training step")
        }
        print("heap in use \(measured.heapBefore) -> \(measured.heapAfter) bytes; resident \(measured.rssBefore / 1024) -> \(measured.rssAfter / 1024) KiB over \(steps) steps; peak \(measured.peakRSS / 1024) KiB")
        if latencyRuns > 0 { print("single-image latency: median \(fixed(measured.latencyMilliseconds, 3)) ms over \(latencyRuns) forward passes") }
    }
}

/// The middle of `values` once sorted (the upper middle for an even count); `values` is not empty.
func median(_ values: [Double]) -> Double {
    values.sorted()[values.count / 2]
}

/// GFLOP/s of repeated n×n×n sgemm (best of 5 after a warm-up).
func measureGEMM(size n: Int) -> Double {
    let a = FloatBuffer(capacity: n * n), b = FloatBuffer(capacity: n * n), c = FloatBuffer(capacity: n * n)
    for i in 0..<(n * n) { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
    var best = 0.0
    for round in 0..<6 {
        let t0 = monotonicSeconds()
        Kernels.gemm(transposeA: false, transposeB: false, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n,
                     beta: 0, c: c.pointer, ldc: n)
        let rate = 2 * Double(n) * Double(n) * Double(n) / (monotonicSeconds() - t0) / 1e9
        if round > 0 { best = max(best, rate) }
    }
    return best
}

/// Bytes the malloc heap has handed out and not taken back (glibc mallinfo2).
func heapBytesInUse() -> Int {
    Int(cheap_bytes_in_use())
}

/// Resident set size from /proc/self/statm.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var size = 0, resident = 0
    _ = withUnsafeMutablePointer(to: &size) { s in
        withUnsafeMutablePointer(to: &resident) { r in
            withVaList([s, r]) { vfscanf(file, "%ld %ld", $0) }
        }
    }
    return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
}
