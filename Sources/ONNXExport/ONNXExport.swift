import Foundation
import NeuralNet
import ONNXProto
import SwiftProtobuf
import Training

/// A network as a standard ONNX model (opset 17, IR version 8): its forward pass in evaluation
/// mode, for other runtimes (onnxruntime and the like).
///
/// ```
/// image (N, 1, H, W) float (1 x 28 x 28 for MNIST): pixel values 0...255, bright ink on black as in MNIST's files
///   ── Div 255, Sub mean, Div standard deviation: `InputNormalizer`, what digits feeds its network
///   ── the nodes of each spec layer, named `layers.<index>` after the layer (table below)
/// logits (N, classes) float, before the softmax
/// ```
///
/// | token | nodes |
/// | --- | --- |
/// | `conv` | Conv (strides, pads); weight (O, I, K, K) and bias as stored |
/// | `bn` | BatchNormalization with the layer's epsilon and its running mean and variance (2-D on N×C too) |
/// | `relu` | Relu |
/// | `pool` | MaxPool (kernel_shape, strides; no padding, the output size rounded down as digits does) |
/// | `gap` | GlobalAveragePool, then Flatten to (N, C) |
/// | `flatten` | Flatten (axis 1), NCHW order as digits'; nothing on a tensor already (N, C) |
/// | `dense` | Gemm with transB = 1: digits stores W as (outputs, inputs) and computes x·Wᵀ + b; a Flatten first on an image |
/// | `drop` | nothing: dropout is the identity in evaluation |
///
/// The initializers are the store's tensors under their checkpoint names (`layers.0.weight`,
/// `layers.1.running_mean`, …), float32 little-endian raw data. The batch dimension is the symbol `N`.
public enum ONNXExport {
    public static let opsetVersion: Int64 = 17
    /// The IR version that goes with opset 17 (ONNX 1.12).
    public static let irVersion: Int64 = 8
    public static let inputName = "image"
    public static let outputName = "logits"
    public static let batchDimension = "N"

    /// What `image` holds, for the model's doc string and `digits export --help`.
    public static let inputDescription = """
        image: float (N, 1, H, W) (H = W = 28 for MNIST), pixel values 0 to 255 with bright ink on a dark background as in MNIST's \
        files (the graph divides by 255 and standardises with mean \(InputNormalizer.mean) and standard deviation \
        \(InputNormalizer.standardDeviation), as digits does)
        """

    /// The model for `network`'s spec and parameters. `metadata` becomes the model's metadata_props
    /// (in key order), beside `model` (the spec) and `input` (`inputDescription`).
    public static func model(of network: Network, producerVersion: String, metadata: [String: String] = [:]) throws -> Onnx_ModelProto {
        var graph = GraphBuilder(store: network.store)
        try graph.addInputScaling()
        // One layer per spec token, not fused: for BatchNorm's epsilon. The values come from
        // `network`'s store, whose tensor names do not depend on fusion.
        let layers = Network(spec: network.spec, seed: 0, fusions: []).layers
        guard layers.count == network.spec.layers.count else {
            throw ONNXExportError("the unfused network of \(network.spec) has \(layers.count) layers for \(network.spec.layers.count) tokens")
        }
        for (index, (token, layer)) in zip(network.spec.layers, layers).enumerated() {
            try graph.add(token, layer: layer, index: index)
        }
        graph.finishWithLogits()

        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""   // the default (ai.onnx) operators
        opset.version = opsetVersion
        model.opsetImport = [opset]
        model.producerName = "digits"
        model.producerVersion = producerVersion
        model.docString = "digits model \(network.spec): \(inputDescription) (here 1 x \(network.spec.input.height) x \(network.spec.input.width)); logits: float (N, \(network.spec.classes)), before the softmax"
        model.graph = graph.proto(name: "digits", input: network.spec.input, classes: network.spec.classes)
        let properties = metadata.merging(["model": "\(network.spec)", "input": inputDescription]) { _, ours in ours }
        model.metadataProps = properties.sorted { $0.key < $1.key }.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        return model
    }

    /// `model(of:…)` as the bytes of a .onnx file.
    public static func serializedModel(of network: Network, producerVersion: String, metadata: [String: String] = [:]) throws -> [UInt8] {
        let model = try model(of: network, producerVersion: producerVersion, metadata: metadata)
        do {
            return try model.serializedBytes()
        } catch {
            throw ONNXExportError("the ONNX model of \(network.spec) could not be encoded: \(error)")
        }
    }
}

public struct ONNXExportError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The node list and initializers as they grow, and the tensor the next node reads.
private struct GraphBuilder {
    private let tensors: [String: (shape: [Int], values: UnsafeBufferPointer<Float>)]
    private var nodes: [Onnx_NodeProto] = []
    private var initializers: [Onnx_TensorProto] = []
    /// The tensor the next node reads, and whether it is (N, C, H, W) rather than (N, C).
    private var current = ONNXExport.inputName
    private var currentIsImage = true

    init(store: ParameterStore) {
        var tensors = [String: (shape: [Int], values: UnsafeBufferPointer<Float>)]()
        for e in store.parameterEntries {
            tensors[e.name] = (e.shape, UnsafeBufferPointer(start: store.parameters + e.slice.offset, count: e.slice.count))
        }
        for e in store.bufferEntries {
            tensors[e.name] = (e.shape, UnsafeBufferPointer(start: store.buffers + e.slice.offset, count: e.slice.count))
        }
        self.tensors = tensors
    }

    /// (x / 255 - mean) / standard deviation, the operations (and so the bits) of `InputNormalizer`'s table.
    mutating func addInputScaling() throws {
        addConstant("input.maximum_pixel", 255)
        addConstant("input.mean", InputNormalizer.mean)
        addConstant("input.standard_deviation", InputNormalizer.standardDeviation)
        try node("Div", name: "input.scale", reading: ["input.maximum_pixel"], output: "input.scaled")
        try node("Sub", name: "input.centre", reading: ["input.mean"], output: "input.centred")
        try node("Div", name: "input.standardise", reading: ["input.standard_deviation"], output: "input.standardised")
    }

    mutating func add(_ token: ModelSpec.LayerSpec, layer: Layer, index: Int) throws {
        let name = "layers.\(index)"
        switch token {
        case .conv(_, let k, let s, let p):
            try node("Conv", name: name, reading: [name + ".weight", name + ".bias"],
                     attributes: [.ints("kernel_shape", [k, k]), .ints("strides", [s, s]), .ints("pads", [p, p, p, p]),
                                  .ints("dilations", [1, 1]), .int("group", 1)])
        case .batchNorm:
            guard let norm = layer as? BatchNorm else { throw ONNXExportError("\(name) is not a BatchNorm layer") }
            try node("BatchNormalization", name: name,
                     reading: [name + ".weight", name + ".bias", name + ".running_mean", name + ".running_var"],
                     attributes: [.float("epsilon", norm.epsilon)])
        case .relu:
            node("Relu", name: name)
        case .maxPool(let k, let s):
            node("MaxPool", name: name, attributes: [.ints("kernel_shape", [k, k]), .ints("strides", [s, s])])
        case .globalAveragePool:
            node("GlobalAveragePool", name: name, output: name + ".pooled")
            flatten(name: name + ".flatten", output: name + ".output")
        case .flatten:
            if currentIsImage { flatten(name: name, output: name + ".output") }
        case .dense:
            if currentIsImage { flatten(name: name + ".flatten", output: name + ".input") }
            try node("Gemm", name: name, reading: [name + ".weight", name + ".bias"], attributes: [.int("transB", 1)])
        case .dropout:
            break
        }
    }

    /// The last node's output is `logits`, (N, classes): an image of that many values (a convolution to 1x1) is flattened first.
    mutating func finishWithLogits() {
        if currentIsImage { flatten(name: "logits.flatten", output: ONNXExport.outputName) }
        nodes[nodes.count - 1].output = [ONNXExport.outputName]
        current = ONNXExport.outputName
    }

    func proto(name: String, input: Shape, classes: Int) -> Onnx_GraphProto {
        var graph = Onnx_GraphProto()
        graph.name = name
        graph.node = nodes
        graph.initializer = initializers
        graph.input = [GraphBuilder.floatTensor(ONNXExport.inputName, shape: [nil, input.channels, input.height, input.width])]
        graph.output = [GraphBuilder.floatTensor(ONNXExport.outputName, shape: [nil, classes])]
        return graph
    }

    private mutating func flatten(name: String, output: String) {
        node("Flatten", name: name, attributes: [.int("axis", 1)], output: output)
        currentIsImage = false
    }

    /// A node reading the current tensor and `initializers` (each added from the store the first
    /// time), writing `output` (default: `name.output`), which becomes the current tensor.
    private mutating func node(_ opType: String, name: String, reading initializerNames: [String],
                               attributes: [Attribute] = [], output: String? = nil) throws {
        for tensor in initializerNames { try addInitializer(tensor) }
        node(opType, name: name, inputs: [current] + initializerNames, attributes: attributes, output: output)
    }

    private mutating func node(_ opType: String, name: String, attributes: [Attribute] = [], output: String? = nil) {
        node(opType, name: name, inputs: [current], attributes: attributes, output: output)
    }

    private mutating func node(_ opType: String, name: String, inputs: [String], attributes: [Attribute], output: String?) {
        var proto = Onnx_NodeProto()
        proto.opType = opType
        proto.name = name
        proto.input = inputs
        proto.output = [output ?? name + ".output"]
        proto.attribute = attributes.map(\.proto)
        nodes.append(proto)
        current = proto.output[0]
    }

    /// Adds the initializer once (inputs constant and not graph inputs, so a runtime may fold them).
    private mutating func addInitializer(_ name: String) throws {
        guard !initializers.contains(where: { $0.name == name }) else { return }
        guard let tensor = tensors[name] else { throw ONNXExportError("the network has no tensor \(name)") }
        initializers.append(GraphBuilder.floatInitializer(name, shape: tensor.shape, values: tensor.values))
    }

    private mutating func addConstant(_ name: String, _ value: Float) {
        [value].withUnsafeBufferPointer { initializers.append(GraphBuilder.floatInitializer(name, shape: [], values: $0)) }
    }

    private static func floatInitializer(_ name: String, shape: [Int], values: UnsafeBufferPointer<Float>) -> Onnx_TensorProto {
        var tensor = Onnx_TensorProto()
        tensor.name = name
        tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.dims = shape.map(Int64.init)
        // raw_data is little-endian whatever the machine.
        let words = values.map { $0.bitPattern.littleEndian }
        tensor.rawData = words.withUnsafeBytes { Data($0) }
        return tensor
    }

    /// A graph input or output: float, with `nil` dimensions the symbol N.
    private static func floatTensor(_ name: String, shape: [Int?]) -> Onnx_ValueInfoProto {
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensorType.shape.dim = shape.map { size in
            var dimension = Onnx_TensorShapeProto.Dimension()
            if let size { dimension.dimValue = Int64(size) } else { dimension.dimParam = ONNXExport.batchDimension }
            return dimension
        }
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type.tensorType = tensorType
        return info
    }
}

/// A node attribute, with its type set as the ONNX checker requires.
private enum Attribute {
    case int(String, Int)
    case ints(String, [Int])
    case float(String, Float)

    var proto: Onnx_AttributeProto {
        var attribute = Onnx_AttributeProto()
        switch self {
        case .int(let name, let value):
            attribute.name = name
            attribute.type = .int
            attribute.i = Int64(value)
        case .ints(let name, let values):
            attribute.name = name
            attribute.type = .ints
            attribute.ints = values.map(Int64.init)
        case .float(let name, let value):
            attribute.name = name
            attribute.type = .float
            attribute.f = value
        }
        return attribute
    }
}
