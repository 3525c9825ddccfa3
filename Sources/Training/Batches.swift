import Augmentation
import CounterRNG
import Datasets
import Foundation
import NeuralNet

/// Pixel bytes to network input: x/255 standardised with MNIST's training-set mean and
/// standard deviation (0.1307, 0.3081), through a 256-entry table.
public struct InputNormalizer: Sendable {
    public static let mean: Float = 0.1307
    public static let standardDeviation: Float = 0.3081
    public let table: [Float]

    public init() {
        table = (0..<256).map { (Float($0) / 255 - InputNormalizer.mean) / InputNormalizer.standardDeviation }
    }

    /// Writes `count` pixels as floats.
    @inline(__always)
    public func convert(_ pixels: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<Float>) {
        table.withUnsafeBufferPointer { t in
            for i in 0..<count { out[i] = t[Int(pixels[i])] }
        }
    }
}

/// Where each rank's training data comes from.
public enum DataPlacement: String, Sendable, CaseIterable {
    /// Each rank holds only its shard (DESIGN.md decision 5) and reshuffles it every epoch.
    /// The least memory; the global batch's makeup depends on the world size.
    case shard
    /// Every rank holds the whole set; each step's global batch is a slice of one permutation
    /// per epoch, so for a given global batch size the data seen does not depend on how many
    /// ranks share it (1 rank x 128 sees what 2 ranks x 64 see, step by step).
    case replicate
}

/// Which samples a rank uses at each step.
///
/// Equal steps by construction: with `shard`, every rank takes floor(total / worldSize) / batch
/// steps, the most the smallest shard can fill; with `replicate`, floor(total / (worldSize ·
/// batch)). The few samples past that are skipped this epoch (a different few each epoch, as
/// the order is reshuffled). No rank ever waits in an allreduce another rank will not reach.
public struct EpochSampler: Sendable {
    public let placement: DataPlacement
    public let localCount: Int
    public let totalCount: Int
    public let worldSize: Int
    public let batchSize: Int
    public let stepsPerEpoch: Int
    public let seed: UInt64
    public let rank: Int

    public init(placement: DataPlacement = .shard, localCount: Int, totalCount: Int, worldSize: Int, batchSize: Int,
                seed: UInt64, rank: Int) {
        self.placement = placement
        self.localCount = localCount
        self.totalCount = totalCount
        self.worldSize = worldSize
        self.batchSize = batchSize
        self.seed = seed
        self.rank = rank
        stepsPerEpoch = EpochSampler.stepsPerEpoch(placement: placement, totalCount: totalCount, worldSize: worldSize, batchSize: batchSize)
    }

    /// Steps in an epoch: every rank takes the same number of full batches.
    public static func stepsPerEpoch(placement: DataPlacement, totalCount: Int, worldSize: Int, batchSize: Int) -> Int {
        switch placement {
        case .shard: return (totalCount / worldSize) / batchSize
        case .replicate: return totalCount / (worldSize * batchSize)
        }
    }

    /// The epoch's visiting order: local indices (shard), or global ones (replicate).
    public func order(epoch: Int) -> [Int32] {
        switch placement {
        case .shard: return keyedPermutation(count: localCount, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64(rank))
        case .replicate: return keyedPermutation(count: totalCount, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64.max)
        }
    }

    /// This rank's batches of `epoch`: its visiting order, cut into steps (a rank of a replicated
    /// world takes every worldSize-th batch of the one global order).
    public func plan(epoch: Int) -> EpochPlan {
        let order = order(epoch: epoch)
        switch placement {
        case .shard:
            return EpochPlan(order: order, steps: stepsPerEpoch, start: 0, stride: batchSize, batchSize: batchSize)
        case .replicate:
            return EpochPlan(order: order, steps: stepsPerEpoch, start: rank * batchSize, stride: worldSize * batchSize, batchSize: batchSize)
        }
    }
}

/// Fills the input and label buffers of one batch from a data set.
public final class BatchAssembler {
    /// Every record of `dataset` in order, `batchSize` at a time (the last batch may be short):
    /// `body` sees the filled assembler and the records' range.
    public static func forEachBatch(of dataset: Dataset, batchSize: Int, _ body: (BatchAssembler, Range<Int>) -> Void) {
        let assembler = BatchAssembler(dataset: dataset, capacity: batchSize)
        var start = 0
        while start < dataset.count {
            let end = min(dataset.count, start + batchSize)
            assembler.assemble(range: start..<end)
            body(assembler, start..<end)
            start = end
        }
    }

    public let dataset: Dataset
    let normalizer = InputNormalizer()
    public let input = FloatBuffer()          // (N, 1, H, W)
    private let augmentScratch = FloatBuffer()
    public private(set) var labels: UnsafeMutablePointer<UInt8>
    private var labelCapacity: Int

    public init(dataset: Dataset, capacity: Int) {
        self.dataset = dataset
        labelCapacity = max(1, capacity)
        labels = .allocate(capacity: labelCapacity)
        input.reserve(labelCapacity * dataset.pixelsPerImage)
    }

    deinit { labels.deallocate() }

    /// Grows the label buffer only when a batch is larger than any before (not in the steady state).
    private func reserveLabels(_ count: Int) {
        guard count > labelCapacity else { return }
        labels.deallocate()
        labelCapacity = count
        labels = .allocate(capacity: labelCapacity)
    }

    /// Samples `indices` (local positions) into the batch buffers, augmented when `augmenter`
    /// is given (keyed by each sample's global id and the epoch).
    public func assemble(_ indices: ArraySlice<Int32>, augmenter: Augmenter?, epoch: Int) {
        guard let augmenter else { assemble(indices); return }
        let pixels = dataset.pixelsPerImage
        reserveLabels(indices.count)
        let x = input.reserve(indices.count * pixels)
        let scratch = augmentScratch.reserve(3 * pixels)
        let scale = 1 / (255 * InputNormalizer.standardDeviation)
        let shift = -InputNormalizer.mean / InputNormalizer.standardDeviation
        dataset.images.withUnsafeBufferPointer { images in
            for (slot, index) in indices.enumerated() {
                let out = x + slot * pixels
                augmenter.augment(images.baseAddress! + Int(index) * pixels, epoch: epoch, sampleID: Int(dataset.ids[Int(index)]),
                                  into: out, scratch: scratch)
                for p in 0..<pixels { out[p] = out[p] * scale + shift }
                labels[slot] = dataset.labels[Int(index)]
            }
        }
    }

    /// Samples `indices` (local positions) into the batch buffers.
    public func assemble(_ indices: ArraySlice<Int32>) {
        let pixels = dataset.pixelsPerImage
        reserveLabels(indices.count)
        let x = input.reserve(indices.count * pixels)
        dataset.images.withUnsafeBufferPointer { images in
            for (slot, index) in indices.enumerated() {
                normalizer.convert(images.baseAddress! + Int(index) * pixels, count: pixels, into: x + slot * pixels)
                labels[slot] = dataset.labels[Int(index)]
            }
        }
    }

    /// Consecutive samples start..<start+count.
    public func assemble(range: Range<Int>) {
        let pixels = dataset.pixelsPerImage
        reserveLabels(range.count)
        let x = input.reserve(range.count * pixels)
        dataset.images.withUnsafeBufferPointer { images in
            normalizer.convert(images.baseAddress! + range.lowerBound * pixels, count: range.count * pixels, into: x)
        }
        for (slot, index) in range.enumerated() { labels[slot] = dataset.labels[index] }
    }
}

/// Loss and accuracy of a network on a whole data set, in evaluation mode.
public struct Evaluation: Sendable {
    public var lossSum: Double
    public var correct: Int
    public var count: Int
    public var loss: Double { count > 0 ? lossSum / Double(count) : 0 }
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }

    /// Loss and accuracy over every record of `dataset` (under MPI, this rank's part of the test set).
    public static func run(_ network: Network, on dataset: Dataset, batchSize: Int = 500) -> Evaluation {
        var result = Evaluation(lossSum: 0, correct: 0, count: 0)
        BatchAssembler.forEachBatch(of: dataset, batchSize: batchSize) { assembler, range in
            let logits = network.forward(assembler.input.pointer, batch: range.count, context: PassContext(mode: .evaluation))
            let r = SoftmaxCrossEntropy.evaluate(logits: logits, labels: assembler.labels, batch: range.count, classes: network.classes)
            result.lossSum += r.lossSum
            result.correct += r.correct
            result.count += range.count
        }
        return result
    }
}

/// Hands the training loop one batch per step. With augmentation, a second thread prepares
/// the next batch while the current one trains (double buffering), so augmentation is off the
/// critical path; without it, batches are assembled in place (a table look-up per pixel).
public final class BatchPipeline {
    public let augmenter: Augmenter?
    private let buffers: [BatchAssembler]
    private var batches: [ArraySlice<Int32>] = []
    private var epoch = 0
    private var cursor = 0
    /// This epoch's batches come augmented from the prefetch thread (else assembled in place).
    private var augmenting = false
    private var worker: Thread?
    private var ready: [DispatchSemaphore] = []
    private var free: [DispatchSemaphore] = []
    private var finished = DispatchSemaphore(value: 0)
    private let cancelled = Flag()
    /// Seconds the background thread spent preparing batches this epoch.
    public private(set) var backgroundSeconds = 0.0
    private let backgroundClock = Accumulator()

    public init(dataset: Dataset, batchSize: Int, augmenter: Augmenter?) {
        self.augmenter = augmenter
        let count = augmenter == nil ? 1 : 2
        buffers = (0..<count).map { _ in BatchAssembler(dataset: dataset, capacity: batchSize) }
    }

    /// Starts an epoch whose steps will use `batches`, in order; `augment` false trains this
    /// epoch on plain images.
    public func begin(epoch: Int, batches: [ArraySlice<Int32>], augment: Bool = true) {
        finish()
        self.epoch = epoch
        self.batches = batches
        cursor = 0
        augmenting = augment && augmenter != nil
        backgroundClock.reset()
        guard augmenting, let augmenter, !batches.isEmpty else { return }
        // Semaphores start at 0 and are signalled up: libdispatch traps when one is freed below
        // its initial value.
        ready = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        free = [DispatchSemaphore(value: 0), DispatchSemaphore(value: 0)]
        free[0].signal(); free[1].signal()
        finished = DispatchSemaphore(value: 0)
        cancelled.value = false
        let (buffers, ready, free, finished, cancelled, clock) = (buffers, ready, free, finished, cancelled, backgroundClock)
        let work = batches
        let thread = Thread {
            for (i, batch) in work.enumerated() {
                free[i % 2].wait()
                if cancelled.value { break }
                let t0 = monotonicSeconds()
                buffers[i % 2].assemble(batch, augmenter: augmenter, epoch: epoch)
                clock.add(monotonicSeconds() - t0)
                ready[i % 2].signal()
            }
            finished.signal()
        }
        thread.stackSize = 1 << 20
        worker = thread
        thread.start()
    }

    /// The next batch; its buffers stay valid until the following call.
    public func next() -> BatchAssembler {
        defer { cursor += 1 }
        guard augmenting else {
            buffers[0].assemble(batches[cursor])
            return buffers[0]
        }
        if cursor > 0 { free[(cursor - 1) % 2].signal() }
        ready[cursor % 2].wait()
        return buffers[cursor % 2]
    }

    /// Stops the background thread (at the end of an epoch, or early).
    public func finish() {
        guard worker != nil else { return }
        cancelled.value = true
        free[0].signal(); free[1].signal()
        finished.wait()
        worker = nil
        backgroundSeconds = backgroundClock.value
    }
}

/// A Bool shared with the prefetch thread (set by one side, read by the other after a semaphore).
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = false
    var value: Bool {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}

final class Accumulator: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0.0
    func add(_ x: Double) { lock.lock(); total += x; lock.unlock() }
    func reset() { lock.lock(); total = 0; lock.unlock() }
    var value: Double { lock.lock(); defer { lock.unlock() }; return total }
}

extension BatchAssembler: @unchecked Sendable {}

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
