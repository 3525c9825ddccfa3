import CounterRNG
import Datasets
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
        switch placement {
        case .shard: stepsPerEpoch = (totalCount / worldSize) / batchSize
        case .replicate: stepsPerEpoch = totalCount / (worldSize * batchSize)
        }
    }

    /// The epoch's visiting order: local indices (shard), or global ones (replicate).
    public func order(epoch: Int) -> [Int32] {
        switch placement {
        case .shard: return keyedPermutation(count: localCount, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64(rank))
        case .replicate: return keyedPermutation(count: totalCount, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64.max)
        }
    }

    /// This rank's samples (indices into its data set) at `step` of an epoch with `order`.
    public func batch(_ order: [Int32], step: Int) -> ArraySlice<Int32> {
        switch placement {
        case .shard: return order[(step * batchSize)..<((step + 1) * batchSize)]
        case .replicate:
            let start = (step * worldSize + rank) * batchSize
            return order[start..<(start + batchSize)]
        }
    }
}

/// Fills the input and label buffers of one batch from a data set.
public final class BatchAssembler {
    public let dataset: Dataset
    let normalizer = InputNormalizer()
    public let input = FloatBuffer()          // (N, 1, 28, 28)
    public private(set) var labels: UnsafeMutablePointer<UInt8>
    private var labelCapacity: Int

    public init(dataset: Dataset, capacity: Int) {
        self.dataset = dataset
        labelCapacity = max(1, capacity)
        labels = .allocate(capacity: labelCapacity)
        input.reserve(labelCapacity * dataset.pixelsPerImage)
    }

    deinit { labels.deallocate() }

    /// Samples `indices` (local positions) into the batch buffers.
    public func assemble(_ indices: ArraySlice<Int32>) {
        let pixels = dataset.pixelsPerImage
        if indices.count > labelCapacity {
            labels.deallocate()
            labelCapacity = indices.count
            labels = .allocate(capacity: labelCapacity)
        }
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
        if range.count > labelCapacity {
            labels.deallocate()
            labelCapacity = range.count
            labels = .allocate(capacity: labelCapacity)
        }
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
        let assembler = BatchAssembler(dataset: dataset, capacity: batchSize)
        var result = Evaluation(lossSum: 0, correct: 0, count: 0)
        var start = 0
        while start < dataset.count {
            let end = min(dataset.count, start + batchSize)
            assembler.assemble(range: start..<end)
            let logits = network.forward(assembler.input.pointer, batch: end - start, context: PassContext(mode: .evaluation))
            let r = SoftmaxCrossEntropy.evaluate(logits: logits, labels: assembler.labels, batch: end - start, classes: network.classes)
            result.lossSum += r.lossSum
            result.correct += r.correct
            result.count += end - start
            start = end
        }
        return result
    }
}
