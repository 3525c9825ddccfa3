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

/// The order in which one rank visits its shard in one epoch: a permutation drawn from
/// (seed, epoch, rank), cut to a number of steps that every rank shares.
///
/// Equal steps by construction: every rank takes floor(total / worldSize) / batch steps, the
/// largest count the smallest shard can fill; the few samples past it are skipped this epoch
/// (a different few each epoch, since the order is reshuffled).
public struct EpochSampler: Sendable {
    public let localCount: Int
    public let batchSize: Int
    public let stepsPerEpoch: Int
    public let seed: UInt64
    public let rank: Int

    public init(localCount: Int, totalCount: Int, worldSize: Int, batchSize: Int, seed: UInt64, rank: Int) {
        self.localCount = localCount
        self.batchSize = batchSize
        self.seed = seed
        self.rank = rank
        stepsPerEpoch = (totalCount / worldSize) / batchSize
    }

    /// Local sample indices for `epoch`, in visiting order.
    public func order(epoch: Int) -> [Int32] {
        keyedPermutation(count: localCount, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64(rank))
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
