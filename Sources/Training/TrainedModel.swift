import Collective
import Datasets
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A trained network read back from a checkpoint, for evaluation and prediction.
public struct TrainedModel {
    public let network: Network
    public let metadata: [String: String]
    public let path: String
    /// One name per class (the digits for MNIST and for checkpoints that record none).
    public let classNames: [String]
    /// One input image, (C, H, W).
    public var input: Shape { network.spec.input }
    /// Which of the checkpoint's weights the network holds: "ema" (the moving average) or "raw".
    public let weightsUsed: String

    /// Which weights of a checkpoint to use, when it holds a moving average besides the live ones.
    public enum Weights: String, Sendable, CaseIterable {
        /// The ones the run chose on validation (`selected_weights`), else the live ones.
        case selected
        case raw
        case ema
    }

    /// Reads, verifies and rebuilds the model a checkpoint describes.
    public init(checkpoint path: String, weights: Weights = .selected) throws {
        let (tensors, metadata) = try CheckpointStore.read(path)
        guard let text = metadata["model"] else { throw CheckpointError(path, "metadata has no model spec") }
        // A checkpoint without a data shape (written before other data sets) is MNIST's.
        let input = try metadata["input_shape"].map { try TrainedModel.parseShape($0, path: path) } ?? ModelSpec.mnistInput
        let classes = try metadata["classes"].map { text in
            guard let n = Int(text), (1...256).contains(n) else { throw CheckpointError(path, "metadata classes '\(text)' is not 1 to 256") }
            return n
        } ?? ModelSpec.mnistClasses
        let spec: ModelSpec
        do { spec = try ModelSpec(parsing: text, input: input, classes: classes) } catch { throw CheckpointError(path, "\(error)") }
        let names = metadata["class_names"].map { $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
        if let names, names.count != classes {
            throw CheckpointError(path, "metadata names \(names.count) classes, the model has \(classes)")
        }
        classNames = names ?? (0..<classes).map(String.init)
        let network = Network(spec: spec, seed: 0)
        var byName = [String: StoredTensor]()
        for t in tensors { byName[t.name] = t }
        let store = network.store
        let hasAverage = metadata["ema_updates"] != nil
        if weights == .ema && !hasAverage {
            throw CheckpointError(path, "holds no weight average (the run was trained without --ema); use the raw weights")
        }
        let useAverage = weights == .ema || (weights == .selected && hasAverage && metadata["selected_weights"] == "ema")
        let prefix = useAverage ? WeightAverage.tensorPrefix : ""
        for e in store.parameterEntries { try copyStoredTensor(prefix + e.name, shape: e.shape, from: byName, into: store.mutableParameters() + e.slice.offset, path: path) }
        for e in store.bufferEntries { try copyStoredTensor(prefix + e.name, shape: e.shape, from: byName, into: store.buffers + e.slice.offset, path: path) }
        weightsUsed = useAverage ? "ema" : "raw"
        self.network = network
        self.metadata = metadata
        self.path = path
    }

    /// "1x28x28" as a shape: (channels, height, width), each 1 to 4096.
    static func parseShape(_ text: String, path: String) throws -> Shape {
        let parts = text.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 3, parts.allSatisfy({ (1...4096).contains($0) }) else {
            throw CheckpointError(path, "metadata input_shape '\(text)' is not CxHxW")
        }
        return Shape(channels: parts[0], height: parts[1], width: parts[2])
    }

    /// Softmax probabilities for a batch of normalised inputs (N, C, H, W); (N, classes) row-major.
    public func probabilities(_ input: UnsafeMutablePointer<Float>, batch: Int) -> [[Float]] {
        let logits = network.forward(input, batch: batch, context: PassContext(mode: .evaluation))
        return (0..<batch).map { SoftmaxCrossEntropy.probabilities(logits + $0 * network.classes, classes: network.classes) }
    }

    /// The logits of every image of `dataset` (normalised as in training), in its order: (count, 10) row-major.
    public func logits(of dataset: Dataset, batchSize: Int = 500) -> [Float] {
        let classes = network.classes
        var all = [Float]()
        all.reserveCapacity(dataset.count * classes)
        BatchAssembler.forEachBatch(of: dataset, batchSize: batchSize) { assembler, range in
            let logits = network.forward(assembler.input.pointer, batch: range.count, context: PassContext(mode: .evaluation))
            all.append(contentsOf: UnsafeBufferPointer(start: logits, count: range.count * classes))
        }
        return all
    }
}

/// The outcome of evaluating a model on a labelled set: counts that add up across ranks.
public struct ClassificationReport: Sendable {
    /// confusion[true][predicted]
    public var confusion: [[Int]]
    public var lossSum: Double
    /// (global id, true label, predicted label, confidence) of every miss.
    public var misses: [(id: Int, label: Int, predicted: Int, confidence: Float)]

    public var count: Int { confusion.reduce(0) { $0 + $1.reduce(0, +) } }
    public var correct: Int { (0..<confusion.count).reduce(0) { $0 + confusion[$1][$1] } }
    public var accuracy: Double { count > 0 ? Double(correct) / Double(count) : 0 }
    public var loss: Double { count > 0 ? lossSum / Double(count) : 0 }

    public func precision(_ c: Int) -> Double {
        let predicted = confusion.reduce(0) { $0 + $1[c] }
        return predicted > 0 ? Double(confusion[c][c]) / Double(predicted) : 0
    }

    public func recall(_ c: Int) -> Double {
        let actual = confusion[c].reduce(0, +)
        return actual > 0 ? Double(confusion[c][c]) / Double(actual) : 0
    }

    /// Sums the counts of every rank and gathers their misses (sorted by id), on every rank.
    public mutating func combine(over communicator: Communicator) throws {
        let classes = confusion.count
        var counts = confusion.flatMap { $0.map(Double.init) } + [lossSum]
        try communicator.allreduceSum(&counts)
        confusion = (0..<classes).map { r in (0..<classes).map { Int(counts[r * classes + $0]) } }
        lossSum = counts[classes * classes]
        let encoded = misses.map { "\($0.id),\($0.label),\($0.predicted),\($0.confidence)" }.joined(separator: ";")
        misses = try communicator.allgather(encoded).flatMap { text in
            text.split(separator: ";").compactMap { item -> (Int, Int, Int, Float)? in
                let f = item.split(separator: ",")
                guard f.count == 4, let id = Int(f[0]), let l = Int(f[1]), let p = Int(f[2]), let c = Float(f[3]) else { return nil }
                return (id, l, p, c)
            }
        }.sorted { $0.id < $1.id }
    }

    /// Runs the model over every record of `dataset` in batches.
    public static func run(_ model: TrainedModel, on dataset: Dataset, batchSize: Int = 500) -> ClassificationReport {
        let classes = model.network.classes
        var report = ClassificationReport(confusion: Array(repeating: Array(repeating: 0, count: classes), count: classes),
                                          lossSum: 0, misses: [])
        BatchAssembler.forEachBatch(of: dataset, batchSize: batchSize) { assembler, range in
            let probabilities = model.probabilities(assembler.input.pointer, batch: range.count)
            for (offset, p) in probabilities.enumerated() {
                let index = range.lowerBound + offset
                let label = Int(dataset.labels[index])
                var best = 0
                for k in 1..<classes where p[k] > p[best] { best = k }
                report.confusion[label][best] += 1
                report.lossSum += -Double(max(p[label], 1e-30)).logarithm
                if best != label { report.misses.append((Int(dataset.ids[index]), label, best, p[best])) }
            }
        }
        return report
    }
}

extension Double {
    var logarithm: Double {
        #if canImport(Glibc)
        return Glibc.log(self)
        #else
        return Darwin.log(self)
        #endif
    }
}

/// Copies the tensor `name` of a checkpoint into `target`, once it is known to be there, to have
/// `shape` and to hold only finite values (what a resume and a trained model both need).
func copyStoredTensor(_ name: String, shape: [Int], from byName: [String: StoredTensor], into target: UnsafeMutablePointer<Float>,
                      path: String) throws {
    guard let t = byName[name] else { throw CheckpointError(path, "tensor \(name) is missing") }
    guard t.shape == shape else { throw CheckpointError(path, "tensor \(name) has shape \(t.shape), the model needs \(shape)") }
    let bad = t.values.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
    guard bad == 0 else { throw CheckpointError(path, "tensor \(name) holds \(bad) NaN or infinite value\(bad == 1 ? "" : "s")") }
    t.values.withUnsafeBufferPointer { target.update(from: $0.baseAddress!, count: $0.count) }
}
