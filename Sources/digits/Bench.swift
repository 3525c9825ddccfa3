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

    func run() throws {
        if let count = allreduceFloats {
            try runAsRank { communicator in
                guard count > 0 else { throw CommandError("--allreduce-floats must be positive") }
                var buffer = [Float](repeating: 1, count: count)
                var times = [Double]()
                for round in 0..<(steps + 5) {
                    try communicator.barrier()
                    let t0 = monotonicSeconds()
                    try buffer.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
                    if round >= 5 { times.append(monotonicSeconds() - t0) }
                }
                var slowest = times
                try slowest.withUnsafeMutableBufferPointer { try communicator.allreduceMax($0) }
                guard communicator.isRoot else { return }
                let median = slowest.sorted()[slowest.count / 2]
                let bytes = count * 4
                print(json ? "{\"ranks\":\(communicator.size),\"bytes\":\(bytes),\"median_seconds\":\(median)}"
                           : "allreduce of \(bytes) bytes on \(communicator.size) rank(s): median \(fixed(median * 1000, 2)) ms over \(steps) calls")
            }
            return
        }
        try reportingErrors {
            try startKernels(threads: threads)
            if fmaPeak {
                let gflops = ck_fma_peak_gflops(1.0)
                print(json ? "{\"threads\":\(threads),\"fma_gflops\":\(gflops),\"isa\":\"\(Kernels.isa.rawValue)\"}"
                           : "fused multiply-add peak, \(Kernels.isa.rawValue), \(threads) thread(s): \(fixed(gflops, 1)) GFLOP/s")
                return
            }
            if let n = gemmSize {
                let gflops = measureGEMM(size: n)
                print(json ? "{\"gemm_size\":\(n),\"threads\":\(threads),\"gflops\":\(gflops),\"isa\":\"\(Kernels.isa.rawValue)\"}"
                           : "sgemm \(n)x\(n)x\(n), \(Kernels.isa.rawValue), \(threads) thread(s): \(fixed(gflops, 1)) GFLOP/s")
                return
            }
            let spec = try ModelSpec.named(model)
            let train = try MNIST.load(.train, from: data.dataDir, verify: false)
            let configuration = TrainingConfiguration(model: spec, epochs: 1000, batchSize: batchSize, learningRate: 1e-3, seed: 1,
                                                      maxSteps: warmupSteps + steps)
            let trainer = try Trainer(configuration: configuration, train: train)
            func runSteps(_ count: Int) throws {
                let target = trainer.globalStep + count
                while trainer.globalStep < target {
                    _ = try trainer.runEpoch(stepLimit: target - trainer.globalStep)
                }
            }
            try runSteps(warmupSteps)
            let heapBefore = heapBytesInUse(), rssBefore = residentBytes()
            let start = monotonicSeconds()
            try runSteps(steps)
            let seconds = monotonicSeconds() - start
            let heapAfter = heapBytesInUse(), rssAfter = residentBytes()
            let imagesPerSecond = Double(steps * batchSize) / seconds
            let flops = Double(trainer.network.forwardMultiplyAdds) * 2 * 3 * imagesPerSecond
            var augmentMilliseconds = 0.0
            if let augment {
                let augmenter = Augmenter(settings: try AugmentationSettings(parsing: augment), seed: 1)
                let assembler = BatchAssembler(dataset: train, capacity: batchSize)
                let plan = trainer.sampler.plan(epoch: 0)
                let rounds = 200
                let t0 = monotonicSeconds()
                for round in 0..<rounds {
                    assembler.assemble(plan.batch(round % plan.steps), augmenter: augmenter, epoch: 0)
                }
                augmentMilliseconds = (monotonicSeconds() - t0) / Double(rounds) * 1000
            }
            let stepMilliseconds = seconds / Double(steps) * 1000
            var inference = 0.0
            if inferenceBatch > 0 {
                let test = try MNIST.load(.test, from: data.dataDir, verify: false)
                _ = Evaluation.run(trainer.network, on: test, batchSize: inferenceBatch)
                let t0 = monotonicSeconds()
                _ = Evaluation.run(trainer.network, on: test, batchSize: inferenceBatch)
                inference = Double(test.count) / (monotonicSeconds() - t0)
            }
            var latencyMilliseconds = 0.0
            if latencyRuns > 0 {
                // One test-set-like image through the network in evaluation mode, as `digits predict` does.
                let image = FloatBuffer(capacity: 784)
                for i in 0..<784 { image.pointer[i] = Float(i % 29) / 29 }
                var times = [Double]()
                for run in 0..<(latencyRuns + 20) {
                    let t0 = monotonicSeconds()
                    _ = trainer.network.forward(image.pointer, batch: 1, context: PassContext(mode: .evaluation))
                    if run >= 20 { times.append(monotonicSeconds() - t0) }
                }
                latencyMilliseconds = times.sorted()[times.count / 2] * 1000
            }
            let peakRSS = peakResidentBytesOfThisProcess()
            if json {
                print("{\"model\":\"\(model)\",\"latency_ms\":\(latencyMilliseconds),\"flop_per_image\":\(Double(trainer.network.forwardMultiplyAdds) * 6),\"peak_rss\":\(peakRSS),\"batch\":\(batchSize),\"threads\":\(threads),\"steps\":\(steps),\"isa\":\"\(Kernels.isa.rawValue)\","
                      + "\"images_per_second\":\(imagesPerSecond),\"gflops\":\(flops / 1e9),\"inference_images_per_second\":\(inference),"
                      + "\"step_ms\":\(stepMilliseconds),\"augment_batch_ms\":\(augmentMilliseconds),"
                      + "\"heap_before\":\(heapBefore),\"heap_after\":\(heapAfter),\"rss_before\":\(rssBefore),\"rss_after\":\(rssAfter)}")
            } else {
                print("\(model) batch \(batchSize) threads \(threads) \(Kernels.isa.rawValue): \(fixed(imagesPerSecond, 0)) images/s training, "
                      + "\(fixed(flops / 1e9, 1)) GFLOP/s" + (inferenceBatch > 0 ? ", \(fixed(inference, 0)) images/s inference" : ""))
                if augment != nil {
                    print("augmenting one batch of \(batchSize): \(fixed(augmentMilliseconds, 3)) ms = \(fixed(100 * augmentMilliseconds / stepMilliseconds, 1))% of a \(fixed(stepMilliseconds, 2)) ms training step")
                }
                print("heap in use \(heapBefore) -> \(heapAfter) bytes; resident \(rssBefore / 1024) -> \(rssAfter / 1024) KiB over \(steps) steps; peak \(peakRSS / 1024) KiB")
                if latencyRuns > 0 { print("single-image latency: median \(fixed(latencyMilliseconds, 3)) ms over \(latencyRuns) forward passes") }
            }
        }
    }
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
