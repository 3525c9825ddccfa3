import Augmentation
import Collective
import Datasets
import NeuralNet

/// One fixed, deterministic variant of an image that test-time augmentation shows the models: the
/// image shifted, rotated about its centre or scaled about its centre (bilinear, zeros outside),
/// through `Augmenter.warp`, the warp training's augmentation uses.
public struct TestTimeView: Equatable, Sendable, CustomStringConvertible {
    /// Pixels to the right (x) and down (y).
    public var shiftX: Float
    public var shiftY: Float
    /// Anticlockwise on the screen is negative: the sign of `Affine`'s rotation (y points down).
    public var rotationDegrees: Float
    /// Both axes; 1 keeps the size.
    public var scale: Float

    public init(shiftX: Float = 0, shiftY: Float = 0, rotationDegrees: Float = 0, scale: Float = 1) {
        self.shiftX = shiftX; self.shiftY = shiftY; self.rotationDegrees = rotationDegrees; self.scale = scale
    }

    public static let identity = TestTimeView()

    public static func shift(x: Float, y: Float) -> TestTimeView { TestTimeView(shiftX: x, shiftY: y) }
    public static func rotation(degrees: Float) -> TestTimeView { TestTimeView(rotationDegrees: degrees) }
    public static func scaling(_ scale: Float) -> TestTimeView { TestTimeView(scale: scale) }

    /// The forward map of an image of width × height.
    public func affine(width: Int, height: Int) -> Affine {
        Affine(rotationDegrees: rotationDegrees, scaleX: scale, scaleY: scale, shearDegrees: 0, shiftX: shiftX, shiftY: shiftY,
               width: width, height: height)
    }

    /// "identity", "shift +1,0", "rotate -8", "scale 1.1", or several of them joined by spaces.
    public var description: String {
        func signed(_ v: Float) -> String { (v > 0 ? "+" : "") + (v == v.rounded() ? "\(Int(v))" : "\(v)") }
        var parts = [String]()
        if shiftX != 0 || shiftY != 0 { parts.append("shift \(signed(shiftX)),\(signed(shiftY))") }
        if rotationDegrees != 0 { parts.append("rotate \(signed(rotationDegrees))") }
        if scale != 1 { parts.append("scale \(scale)") }
        return parts.isEmpty ? "identity" : parts.joined(separator: " ")
    }
}

/// The named sets of views `--tta-views` offers; each begins with the image itself. Kept small:
/// every view is one more forward pass of every member (a Raspberry Pi feels each). The scales and
/// rotations stay inside the range training's `--augment default` draws from (±10%, ±10 degrees).
public enum TestTimeViewSet: String, CaseIterable, Sendable {
    /// The image and the image scaled by 0.9 and 1.1 about its centre: 3 views.
    case scales
    /// The image and two rotations by ±8 degrees: 3 views.
    case rotations
    /// The image and its four 1-pixel shifts (right, left, down, up): 5 views.
    case shifts
    /// The scales and the rotations: 5 views.
    case scalesRotations = "scales-rotations"

    /// What `--tta` uses when `--tta-views` is not given: chosen on 5,000 training images held out of
    /// training (the lowest loss of the ensemble and the fewest member errors there, at 3 views;
    /// docs/accuracy.md, "Ensembles and test-time augmentation").
    public static let standard = TestTimeViewSet.scales

    public var views: [TestTimeView] {
        let scales: [TestTimeView] = [.scaling(0.9), .scaling(1.1)]
        let rotations: [TestTimeView] = [.rotation(degrees: 8), .rotation(degrees: -8)]
        switch self {
        case .scales: return [.identity] + scales
        case .rotations: return [.identity] + rotations
        case .shifts: return [.identity, .shift(x: 1, y: 0), .shift(x: -1, y: 0), .shift(x: 0, y: 1), .shift(x: 0, y: -1)]
        case .scalesRotations: return [.identity] + scales + rotations
        }
    }
}

/// Several trained models read as one: the probabilities of every member on every view of an image,
/// averaged (the members' softmax outputs, not their logits, so a member sure of itself does not
/// outvote the others by the size of its logits). One member with the identity view alone is the
/// model itself, to the bit.
public final class Ensemble {
    public let members: [TrainedModel]
    public let views: [TestTimeView]
    /// One image, (C, H, W): every member's.
    public var input: Shape { members[0].input }
    /// Every member's class names.
    public var classNames: [String] { members[0].classNames }
    public var classes: Int { members[0].network.classes }
    /// One model shown only the image itself: what evaluate and predict did before ensembles.
    public var isSingleModel: Bool { members.count == 1 && views == [.identity] }

    private let warped = FloatBuffer()   // (N, C, H, W) the views' pixels, 0...255
    private let normalizer = InputNormalizer()
    private let normalised = FloatBuffer()   // (N, C, H, W) a member's input (a first ReLU may overwrite it)

    /// Members must agree on the input shape and the classes (count and names), or nothing they say
    /// can be averaged: the first member that differs from the first one is named with what differs.
    public init(members: [TrainedModel], views: [TestTimeView] = [.identity]) throws {
        guard let first = members.first else { throw EnsembleError(checkpoint: nil, "an ensemble needs at least one checkpoint") }
        guard !views.isEmpty else { throw EnsembleError(checkpoint: nil, "test-time augmentation needs at least one view") }
        for member in members.dropFirst() {
            let against = "but \(first.path) (the first checkpoint) "
            if member.input != first.input {
                throw EnsembleError(checkpoint: member.path, "takes \(Ensemble.describe(member.input)) images, "
                                    + against + "takes \(Ensemble.describe(first.input)); an ensemble's members must read the same images")
            }
            if member.classNames.count != first.classNames.count {
                throw EnsembleError(checkpoint: member.path, "has \(member.classNames.count) classes, "
                                    + against + "has \(first.classNames.count); an ensemble's members must have the same classes")
            }
            if let k = (0..<first.classNames.count).first(where: { member.classNames[$0] != first.classNames[$0] }) {
                throw EnsembleError(checkpoint: member.path, "names class \(k) '\(member.classNames[k])', "
                                    + against + "names it '\(first.classNames[k])'; an ensemble's members must have the same classes")
            }
        }
        self.members = members
        self.views = views
    }

    /// Reads every checkpoint (`TrainedModel`) and checks that they agree.
    public convenience init(checkpoints: [String], views: [TestTimeView] = [.identity], weights: TrainedModel.Weights = .selected) throws {
        try self.init(members: try checkpoints.map { try TrainedModel(checkpoint: $0, weights: weights) }, views: views)
    }

    /// "1x28x28" (channels x height x width), the form checkpoints record.
    static func describe(_ shape: Shape) -> String { "\(shape.channels)x\(shape.height)x\(shape.width)" }

    /// The probabilities of a batch of images given as pixel values 0...255, (N, C, H, W): every
    /// member's mean over the views, and the mean of those (`EnsembleProbabilities`).
    public func probabilities(ofPixels pixels: UnsafePointer<UInt8>, batch: Int) -> EnsembleProbabilities {
        let classes = self.classes, count = batch * input.count
        let plane = input.height * input.width, planes = batch * input.channels
        let warper = Augmenter(settings: .none, width: input.width, height: input.height, seed: 0)
        let raw = warped.reserve(count), x = normalised.reserve(count)
        var sums = Array(repeating: [Float](repeating: 0, count: batch * classes), count: members.count)   // per member (N, classes)
        for view in views {
            // The image itself is read as BatchAssembler reads it (the same bits, and no warp to pay for).
            let isImage = view == .identity
            if !isImage {
                let forward = view.affine(width: input.width, height: input.height)
                for p in 0..<planes { warper.warp(pixels + p * plane, with: forward, into: raw + p * plane) }
            }
            for (m, member) in members.enumerated() {
                if isImage {
                    normalizer.convert(pixels, count: count, into: x)
                } else {
                    // The normalisation of `InputNormalizer`'s table, written out so warped (fractional)
                    // pixels keep their fraction; for whole values the same operations give the same bits.
                    for i in 0..<count { x[i] = (raw[i] / 255 - InputNormalizer.mean) / InputNormalizer.standardDeviation }
                }
                let logits = member.network.forward(x, batch: batch, context: PassContext(mode: .evaluation))
                sums[m].withUnsafeMutableBufferPointer { sum in
                    for n in 0..<batch {
                        let p = SoftmaxCrossEntropy.probabilities(logits + n * classes, classes: classes)
                        for k in 0..<classes { sum[n * classes + k] += p[k] }
                    }
                }
            }
        }
        let viewCount = Float(views.count), memberCount = Float(members.count)
        let perMember = sums.map { sum in sum.map { $0 / viewCount } }
        var mean = [Float](repeating: 0, count: batch * classes)
        for member in perMember { for i in 0..<mean.count { mean[i] += member[i] } }
        for i in 0..<mean.count { mean[i] /= memberCount }
        return EnsembleProbabilities(classes: classes, mean: mean, members: perMember)
    }

    /// Every image of `dataset` in order, `batchSize` at a time: `body` sees the records' range and
    /// their probabilities.
    public func forEachBatch(of dataset: Dataset, batchSize: Int = 500, _ body: (Range<Int>, EnsembleProbabilities) -> Void) {
        let pixels = dataset.pixelsPerImage
        dataset.images.withUnsafeBufferPointer { images in
            var start = 0
            while start < dataset.count {
                let end = min(dataset.count, start + batchSize)
                body(start..<end, probabilities(ofPixels: images.baseAddress! + start * pixels, batch: end - start))
                start = end
            }
        }
    }

    /// The natural logarithm of the ensemble's probabilities for every image of `dataset`, in its
    /// order, (count, classes) row-major: what `evaluate --logits-out` writes for an ensemble or
    /// with views. The softmax of a row gives the averaged probabilities back (the log of zero is
    /// kept finite at log(1e-30), as in the loss).
    public func logProbabilities(of dataset: Dataset, batchSize: Int = 500) -> [Float] {
        var all = [Float]()
        all.reserveCapacity(dataset.count * classes)
        forEachBatch(of: dataset, batchSize: batchSize) { _, probabilities in
            all += probabilities.mean.map { Float(Double(max($0, 1e-30)).logarithm) }
        }
        return all
    }
}

/// The probabilities of one batch: (N, classes) row-major each.
public struct EnsembleProbabilities: Sendable {
    public let classes: Int
    /// The mean over members of each member's mean over the views.
    public let mean: [Float]
    /// Each member's mean over the views, in the members' order.
    public let members: [[Float]]

    /// Image `n`'s row of the ensemble's probabilities.
    public func row(_ n: Int) -> ArraySlice<Float> { mean[(n * classes)..<((n + 1) * classes)] }
}

/// An ensemble that cannot be made: which checkpoint (when one is to blame) and the problem.
public struct EnsembleError: Error, CustomStringConvertible, Sendable {
    public let checkpoint: String?
    public let problem: String
    public init(checkpoint: String?, _ problem: String) { self.checkpoint = checkpoint; self.problem = problem }
    public var description: String { checkpoint.map { "\($0): \(problem)" } ?? problem }
}

/// An ensemble measured on a labelled set: its own report, and each member's (with the same views),
/// all counts that add up across ranks.
public struct EnsembleReport: Sendable {
    public var ensemble: ClassificationReport
    /// Counts and loss only: a member's misses are not kept.
    public var members: [ClassificationReport]

    /// Runs the ensemble over every record of `dataset` in batches.
    public static func run(_ ensemble: Ensemble, on dataset: Dataset, batchSize: Int = 500) -> EnsembleReport {
        var result = EnsembleReport(ensemble: .empty(classes: ensemble.classes),
                                    members: Array(repeating: .empty(classes: ensemble.classes), count: ensemble.members.count))
        ensemble.forEachBatch(of: dataset, batchSize: batchSize) { range, probabilities in
            let classes = probabilities.classes
            for (offset, index) in range.enumerated() {
                let label = Int(dataset.labels[index]), id = Int(dataset.ids[index])
                let row = (offset * classes)..<((offset + 1) * classes)
                result.ensemble.record(probabilities.mean[row], label: label, id: id, keepingMisses: true)
                for m in 0..<result.members.count {
                    result.members[m].record(probabilities.members[m][row], label: label, id: id, keepingMisses: false)
                }
            }
        }
        return result
    }

    /// Sums every rank's counts (and gathers the ensemble's misses), on every rank.
    public mutating func combine(over communicator: Communicator) throws {
        try ensemble.combine(over: communicator)
        for m in 0..<members.count { try members[m].combine(over: communicator) }
    }
}

extension ClassificationReport {
    static func empty(classes: Int) -> ClassificationReport {
        ClassificationReport(confusion: Array(repeating: Array(repeating: 0, count: classes), count: classes), lossSum: 0, misses: [])
    }

    /// Counts one image from its probabilities, as `run` does: the first largest probability is the
    /// prediction, the loss is -log p(label).
    mutating func record(_ p: ArraySlice<Float>, label: Int, id: Int, keepingMisses: Bool) {
        let base = p.startIndex
        var best = 0
        for k in 1..<p.count where p[base + k] > p[base + best] { best = k }
        confusion[label][best] += 1
        lossSum += -Double(max(p[base + label], 1e-30)).logarithm
        if keepingMisses && best != label { misses.append((id, label, best, p[base + best])) }
    }
}
