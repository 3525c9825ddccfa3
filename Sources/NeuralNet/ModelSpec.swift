/// A model described as data: a dash-separated list of layer tokens. It round-trips to text,
/// so a checkpoint can rebuild its model from one string.
///
/// | token | layer |
/// | --- | --- |
/// | `conv32k5` , `conv32k5p2`, `conv32k3s2p1` | Conv2D: 32 output channels, kernel 5, optional stride `s`, padding `p` |
/// | `bn` | BatchNorm (2-D on images, 1-D on vectors) |
/// | `relu` | ReLU |
/// | `pool2`, `pool3s2` | max pooling, kernel 2 (stride defaults to the kernel) |
/// | `gap` | global average pooling |
/// | `flatten` | flatten to a vector |
/// | `dense128` | fully connected, 128 outputs |
/// | `drop0.5` | dropout with rate 0.5 |
///
/// A spec is built for an input shape and a class count (MNIST's by default: one 28×28 grey image,
/// 10 classes); shapes are checked against that input and the last layer must produce one value
/// per class (the logits). The presets are written for MNIST and end in `dense10`: for a data set
/// with K classes, `named` makes that last layer `denseK`. A spec written out in full is taken as
/// it is and must end in K values.
public struct ModelSpec: Equatable, Sendable, CustomStringConvertible {
    public enum LayerSpec: Equatable, Sendable {
        case conv(outputChannels: Int, kernel: Int, stride: Int, padding: Int)
        case batchNorm
        case relu
        case maxPool(kernel: Int, stride: Int)
        case globalAveragePool
        case flatten
        case dense(outputs: Int)
        case dropout(rate: Float)

        var token: String {
            switch self {
            case .conv(let c, let k, let s, let p):
                return "conv\(c)k\(k)" + (s != 1 ? "s\(s)" : "") + (p != 0 ? "p\(p)" : "")
            case .batchNorm: return "bn"
            case .relu: return "relu"
            case .maxPool(let k, let s): return "pool\(k)" + (s != k ? "s\(s)" : "")
            case .globalAveragePool: return "gap"
            case .flatten: return "flatten"
            case .dense(let o): return "dense\(o)"
            case .dropout(let r): return "drop\(r)"
            }
        }
    }

    public let layers: [LayerSpec]
    /// One input image, (C, H, W).
    public let input: Shape
    /// The logits the model ends in, one per class.
    public let classes: Int

    public static let mnistInput = Shape(channels: 1, height: 28, width: 28)
    public static let mnistClasses = 10

    public init(layers: [LayerSpec], input: Shape = ModelSpec.mnistInput, classes: Int = ModelSpec.mnistClasses) {
        self.layers = layers
        self.input = input
        self.classes = classes
    }

    public var description: String { layers.map(\.token).joined(separator: "-") }

    /// The named presets (docs/training.md, Models): name -> spec text.
    public static let presets: [(name: String, spec: String, about: String)] = [
        ("seed-mlp", "flatten-dense128-relu-dense128-relu-dense10",
         "the seed paper's MLP (97.04% after 3 epochs, Adam, batch 32)"),
        ("lenet5", "conv6k5p2-relu-pool2-conv16k5-relu-pool2-flatten-dense120-relu-dense84-relu-dense10",
         "LeCun et al. 1998, with ReLU and max pooling"),
        ("convnet", "conv32k3-relu-pool2-conv64k3-relu-pool2-flatten-drop0.5-dense10",
         "Keras' mnist_convnet example"),
        ("reference", "conv32k5p2-bn-relu-pool2-conv64k5p2-bn-relu-pool2-flatten-dense256-relu-drop0.4-dense10",
         "857,930 parameters; the side-by-side speed model"),
        ("default", "conv32k5p2-bn-relu-pool2-conv64k3p1-bn-relu-conv64k3p1-bn-relu-pool2-flatten-drop0.3-dense10",
         "digits' own: accuracy per FLOP and per parameter"),
    ]

    /// A preset name or a spec string, for `input` images and `classes` classes. A preset's final
    /// `dense10` (MNIST's ten logits) becomes `dense<classes>`.
    public static func named(_ text: String, input: Shape = ModelSpec.mnistInput,
                             classes: Int = ModelSpec.mnistClasses) throws -> ModelSpec {
        if let preset = presets.first(where: { $0.name == text }) {
            var spec = preset.spec
            if spec.hasSuffix("-dense10") { spec = String(spec.dropLast(2)) + String(classes) }
            return try ModelSpec(parsing: spec, input: input, classes: classes)
        }
        return try ModelSpec(parsing: text, input: input, classes: classes)
    }

    public init(parsing text: String, input: Shape = ModelSpec.mnistInput, classes: Int = ModelSpec.mnistClasses) throws {
        let tokens = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty else { throw ModelSpecError(text: text, reason: "the model spec is empty") }
        var layers = [LayerSpec]()
        for token in tokens {
            if !token.hasPrefix("drop"), let huge = ModelSpec.firstNumberOverLimit(token) {
                throw ModelSpecError(text: text, reason: "'\(token)': \(huge) is more than the limit of \(ModelSpec.maxNumber) for any size in a layer token")
            }
            guard let layer = ModelSpec.parseToken(token) else {
                throw ModelSpecError(text: text, reason: "'\(token)' is not a layer token (known: convNkK[sS][pP], bn, relu, poolK[sS], gap, flatten, denseN, dropR, or a preset: \(ModelSpec.presets.map(\.name).joined(separator: ", ")))")
            }
            layers.append(layer)
        }
        self.layers = layers
        self.input = input
        self.classes = classes
        try validate(text)
    }

    /// The first run of digits in a token that is over `maxNumber` (as text: it may not fit an Int).
    private static func firstNumberOverLimit(_ token: String) -> String? {
        var digits = ""
        for ch in token + " " {
            if ch.isASCII && ch.isNumber { digits.append(ch); continue }
            let significant = digits.drop { $0 == "0" }
            if significant.count > 6 || (Int(significant) ?? 0) > maxNumber { return digits }
            digits = ""
        }
        return nil
    }

    private static func parseToken(_ token: String) -> LayerSpec? {
        switch token {
        case "bn": return .batchNorm
        case "relu": return .relu
        case "gap": return .globalAveragePool
        case "flatten": return .flatten
        default: break
        }
        if token.hasPrefix("conv") {
            // conv<C>k<K>[s<S>][p<P>]
            let fields = numberedFields(String(token.dropFirst(4)), first: "", keys: ["k", "s", "p"])
            guard let c = fields[""], let k = fields["k"], c > 0, k > 0 else { return nil }
            let s = fields["s"] ?? 1, p = fields["p"] ?? 0
            guard s > 0, p >= 0, p < k else { return nil }
            return .conv(outputChannels: c, kernel: k, stride: s, padding: p)
        }
        if token.hasPrefix("pool") {
            let fields = numberedFields(String(token.dropFirst(4)), first: "", keys: ["s"])
            guard let k = fields[""], k > 0 else { return nil }
            let s = fields["s"] ?? k
            guard s > 0 else { return nil }
            return .maxPool(kernel: k, stride: s)
        }
        if token.hasPrefix("dense"), let n = Int(token.dropFirst(5)), n > 0 { return .dense(outputs: n) }
        if token.hasPrefix("drop"), let r = Float(token.dropFirst(4)), r >= 0, r < 1 { return .dropout(rate: r) }
        return nil
    }

    /// "32k5s2p1" with keys [k, s, p] -> ["": 32, "k": 5, "s": 2, "p": 1]; nil entries on junk.
    private static func numberedFields(_ text: String, first: String, keys: Set<Character>) -> [String: Int] {
        var result = [String: Int]()
        var key = first
        var digits = ""
        var seen = Set<String>()
        for ch in text {
            if ch.isASCII && ch.isNumber { digits.append(ch); continue }
            guard keys.contains(ch), !digits.isEmpty, !seen.contains(String(ch)) else { return [:] }
            result[key] = Int(digits)
            seen.insert(key)
            key = String(ch)
            digits = ""
        }
        guard !digits.isEmpty else { return [:] }
        result[key] = Int(digits)
        return result
    }

    /// Limits on what a spec may ask for, checked before anything is multiplied or allocated
    /// (a spec also arrives inside checkpoint files). Far above any MNIST model
    /// (`reference` has 857,930 parameters and 59,000 activation values per image).
    public static let maxLayers = 1_000
    public static let maxNumber = 100_000
    public static let maxParameters = 100_000_000
    public static let maxActivationsPerImage = 4_000_000

    /// Shapes flow from `input`: every layer must fit its input, and the output must be `classes` logits. Parameter
    /// and activation counts are summed with checked arithmetic against the limits above.
    private func validate(_ text: String) throws {
        guard layers.count <= ModelSpec.maxLayers else {
            throw ModelSpecError(text: text, reason: "\(layers.count) layers; the limit is \(ModelSpec.maxLayers)")
        }
        guard input.channels > 0, input.height > 0, input.width > 0, classes > 0 else {
            throw ModelSpecError(text: text, reason: "an input of \(input) and \(classes) classes is no model's")
        }
        var shape = input
        var parameters = SizeCount(limit: ModelSpec.maxParameters, what: "parameters", text: text)
        var activations = SizeCount(limit: ModelSpec.maxActivationsPerImage, what: "activation values per image", text: text)
        for (index, layer) in layers.enumerated() {
            let where_ = "layer \(index + 1) '\(layer.token)'"
            switch layer {
            case .conv(let c, let k, _, _): try parameters.add([c, shape.channels, k, k], plus: c, at: where_)
            case .dense(let o): try parameters.add([o, shape.count], plus: o, at: where_)
            case .batchNorm: try parameters.add([2, shape.channels], at: where_)
            default: break
            }
            shape = try ModelSpec.output(of: layer, from: shape, at: where_, text: text)
            try activations.add([shape.channels, shape.height, shape.width], at: where_)
        }
        guard shape.count == classes else {
            throw ModelSpecError(text: text, reason: "the model ends in \(shape) values, not the \(classes) class logits")
        }
    }

    /// A layer's output shape, or the reason it does not fit its input.
    private static func output(of layer: LayerSpec, from shape: Shape, at where_: String, text: String) throws -> Shape {
        switch layer {
        case .conv(let c, let k, let s, let p):
            guard !shape.isVector else { throw ModelSpecError(text: text, reason: "\(where_) needs an image, got a vector") }
            let oh = (shape.height + 2 * p - k) / s + 1, ow = (shape.width + 2 * p - k) / s + 1
            guard shape.height + 2 * p >= k, shape.width + 2 * p >= k, oh > 0, ow > 0 else {
                throw ModelSpecError(text: text, reason: "\(where_) does not fit its \(shape) input")
            }
            return Shape(channels: c, height: oh, width: ow)
        case .maxPool(let k, let s):
            guard !shape.isVector, shape.height >= k, shape.width >= k else {
                throw ModelSpecError(text: text, reason: "\(where_) does not fit its \(shape) input")
            }
            return Shape(channels: shape.channels, height: (shape.height - k) / s + 1, width: (shape.width - k) / s + 1)
        case .globalAveragePool, .flatten:
            return .vector(shape.channels * (layer == .flatten ? shape.height * shape.width : 1))
        case .dense(let o):
            return .vector(o)
        case .batchNorm, .relu, .dropout:
            return shape
        }
    }

    /// A running total of products, each factor and sum checked for overflow and against `limit`.
    private struct SizeCount {
        let limit: Int, what: String, text: String
        var total = 0

        init(limit: Int, what: String, text: String) { self.limit = limit; self.what = what; self.text = text }

        mutating func add(_ factors: [Int], plus extra: Int = 0, at where_: String) throws {
            var product = 1
            for f in factors {
                let (p, overflow) = product.multipliedReportingOverflow(by: f)
                guard !overflow, p <= limit else { throw ModelSpecError(text: text, reason: "\(where_) needs more than \(limit) \(what)") }
                product = p
            }
            let (sum, overflow) = total.addingReportingOverflow(product + extra)
            guard !overflow, sum <= limit else { throw ModelSpecError(text: text, reason: "\(where_) takes the model past \(limit) \(what)") }
            total = sum
        }
    }
}

public struct ModelSpecError: Error, CustomStringConvertible, Sendable {
    public let text: String
    public let reason: String
    public var description: String { "model spec '\(text)': \(reason)" }
}

extension ModelSpec.LayerSpec {
    /// The layer this token builds, named `layers.<index>` (its parameters `layers.<index>.weight`
    /// and so on in the store). `writesOverInput`: `LayerFusion`'s word on whether a BatchNorm may
    /// write over its input.
    func makeLayer(index: Int, inputShape shape: Shape, writesOverInput: Bool, store: ParameterStore,
                   workspace: GradientWorkspace) -> Layer {
        let name = "layers.\(index)"
        switch self {
        case .conv(let c, let k, let s, let p):
            return Conv2D(name: name, inputShape: shape, outputChannels: c, kernelSize: k, stride: s, padding: p, store: store,
                          workspace: workspace)
        case .batchNorm: return BatchNorm(name: name, inputShape: shape, store: store, writesOverInput: writesOverInput)
        case .relu: return ReLU(name: name, inputShape: shape)
        case .maxPool(let k, let s): return MaxPool2D(name: name, inputShape: shape, kernelSize: k, stride: s, workspace: workspace)
        case .globalAveragePool: return GlobalAveragePool(name: name, inputShape: shape, workspace: workspace)
        case .flatten: return Flatten(name: name, inputShape: shape)
        case .dense(let o): return Dense(name: name, inputShape: shape, outputs: o, store: store, workspace: workspace)
        case .dropout(let r): return Dropout(name: name, inputShape: shape, rate: r, layerIndex: index)
        }
    }
}
