import Foundation
import NeuralNet
import ONNXExport
import ONNXProto
import SwiftProtobuf
import Testing
import Training

@Suite struct ONNXExportTests {
    static let everyToken = "conv4k3s2p1-bn-relu-pool3s2-conv6k3p1-bn-relu-gap-dense12-bn-relu-drop0.3-dense10"

    /// A network whose BatchNorm scales, shifts and running statistics are not the initial 1, 0, 0, 1.
    static func network(_ spec: String, seed: UInt64 = 3) throws -> Network {
        let network = Network(spec: try ModelSpec(parsing: spec), seed: seed, fusions: .all)
        var random = SystemRandomNumberGenerator()
        let store = network.store
        let parameters = store.mutableParameters()
        for e in store.parameterEntries where !e.name.hasSuffix(".weight") || e.shape.count == 1 {
            for i in 0..<e.slice.count { parameters[e.slice.offset + i] = Float.random(in: 0.5...1.5, using: &random) * (e.name.hasSuffix(".bias") ? 0.2 : 1) }
        }
        for e in store.bufferEntries {
            let variance = e.name.hasSuffix(".running_var")
            for i in 0..<e.slice.count { store.buffers[e.slice.offset + i] = variance ? Float.random(in: 0.2...3, using: &random) : Float.random(in: -1...1, using: &random) }
        }
        return network
    }

    static func model(_ network: Network) throws -> Onnx_ModelProto {
        try ONNXExport.model(of: network, producerVersion: "test", metadata: ["epoch": "2"])
    }

    @Test func nodesFollowTheSpec() throws {
        let graph = try Self.model(try Self.network(Self.everyToken)).graph
        #expect(graph.node.map(\.opType) == ["Div", "Sub", "Div", "Conv", "BatchNormalization", "Relu", "MaxPool", "Conv",
                                             "BatchNormalization", "Relu", "GlobalAveragePool", "Flatten", "Gemm",
                                             "BatchNormalization", "Relu", "Gemm"])
        #expect(graph.node.map(\.name) == ["input.scale", "input.centre", "input.standardise", "layers.0", "layers.1", "layers.2",
                                           "layers.3", "layers.4", "layers.5", "layers.6", "layers.7", "layers.7.flatten",
                                           "layers.8", "layers.9", "layers.10", "layers.12"])
        #expect(graph.node.first?.input.first == "image" && graph.node.last?.output == ["logits"])
    }

    @Test func imagesAreFlattenedBeforeDenseLayersAndLogits() throws {
        let cases: [(String, [String])] = [
            ("conv3k3-dense10", ["Conv", "Flatten", "Gemm"]),
            ("conv10k28", ["Conv", "Flatten"]),
            ("conv10k28-relu-drop0.5", ["Conv", "Relu", "Flatten"]),
            ("flatten-flatten-dense10-drop0.1", ["Flatten", "Gemm"]),
            ("dense10", ["Flatten", "Gemm"]),
        ]
        for (spec, operators) in cases {
            let graph = try Self.model(try Self.network(spec)).graph
            #expect(Array(graph.node.map(\.opType).dropFirst(3)) == operators, "\(spec)")
            #expect(graph.node.last?.output == ["logits"], "\(spec)")
        }
    }

    @Test func attributesCarryTheLayersGeometry() throws {
        let graph = try Self.model(try Self.network(Self.everyToken)).graph
        func attributes(_ name: String) throws -> [String: Onnx_AttributeProto] {
            let node = try #require(graph.node.first { $0.name == name })
            return Dictionary(uniqueKeysWithValues: node.attribute.map { ($0.name, $0) })
        }
        let conv = try attributes("layers.0")
        #expect(conv["kernel_shape"]?.ints == [3, 3] && conv["strides"]?.ints == [2, 2] && conv["pads"]?.ints == [1, 1, 1, 1])
        #expect(conv["group"]?.i == 1 && conv["kernel_shape"]?.type == .ints && conv["group"]?.type == .int)
        let norm = try attributes("layers.1")
        #expect(norm["epsilon"]?.f == 1e-5 && norm["epsilon"]?.type == .float)
        let pool = try attributes("layers.3")
        #expect(pool["kernel_shape"]?.ints == [3, 3] && pool["strides"]?.ints == [2, 2] && pool["pads"] == nil)
        #expect(try attributes("layers.7.flatten")["axis"]?.i == 1)
        #expect(try attributes("layers.8")["transB"]?.i == 1)
    }

    @Test func initializersAreTheStoresTensorsBitForBit() throws {
        let network = try Self.network(Self.everyToken)
        let graph = try Self.model(network).graph
        let store = network.store
        let entries = store.parameterEntries.map { ($0, store.parameters) } + store.bufferEntries.map { ($0, UnsafePointer(store.buffers)) }
        #expect(graph.initializer.count == entries.count + 3)
        for (entry, arena) in entries {
            let tensor = try #require(graph.initializer.first { $0.name == entry.name }, "\(entry.name)")
            #expect(tensor.dims == entry.shape.map(Int64.init) && tensor.dataType == 1, "\(entry.name)")
            let stored = (0..<entry.slice.count).map { arena[entry.slice.offset + $0].bitPattern }
            #expect(Self.floats(tensor.rawData).map(\.bitPattern) == stored, "\(entry.name)")
        }
        #expect(graph.initializer.first { $0.name == "layers.0.weight" }?.dims == [4, 1, 3, 3])
        #expect(graph.initializer.first { $0.name == "layers.8.weight" }?.dims == [12, 6])
        let mean = try #require(graph.initializer.first { $0.name == "input.mean" })
        #expect(mean.dims.isEmpty && Self.floats(mean.rawData) == [InputNormalizer.mean])
    }

    @Test func theModelRoundTripsThroughItsBytes() throws {
        let network = try Self.network(try ModelSpec.named("lenet5").description)
        let model = try Self.model(network)
        let bytes = try ONNXExport.serializedModel(of: network, producerVersion: "test", metadata: ["epoch": "2"])
        let decoded = try Onnx_ModelProto(serializedBytes: bytes)
        #expect(decoded == model)
        #expect(decoded.irVersion == 8 && decoded.opsetImport.map(\.version) == [17] && decoded.opsetImport.map(\.domain) == [""])
        #expect(decoded.producerName == "digits" && decoded.producerVersion == "test")
        let input = try #require(decoded.graph.input.first), output = try #require(decoded.graph.output.first)
        #expect(decoded.graph.input.count == 1 && decoded.graph.output.count == 1)
        #expect(input.name == "image" && output.name == "logits")
        #expect(input.type.tensorType.elemType == 1 && output.type.tensorType.elemType == 1)
        #expect(input.type.tensorType.shape.dim.map(Self.dimension) == ["N", "1", "28", "28"])
        #expect(output.type.tensorType.shape.dim.map(Self.dimension) == ["N", "10"])
        let properties = Dictionary(uniqueKeysWithValues: decoded.metadataProps.map { ($0.key, $0.value) })
        #expect(properties["model"] == network.spec.description && properties["epoch"] == "2" && properties["input"] == ONNXExport.inputDescription)
    }

    /// Every node reads the image, an initializer or an earlier node's output; names are unique;
    /// every initializer is read. For every preset.
    @Test func everyPresetIsAWellFormedGraph() throws {
        for preset in ModelSpec.presets {
            let graph = try Self.model(try Self.network(preset.spec)).graph
            var known = Set(graph.initializer.map(\.name) + ["image"])
            #expect(known.count == graph.initializer.count + 1, "\(preset.name)")
            var read = Set<String>()
            for node in graph.node {
                #expect(node.input.allSatisfy(known.contains), "\(preset.name): \(node.name) reads \(node.input)")
                #expect(node.output.count == 1 && !known.contains(node.output[0]), "\(preset.name): \(node.name)")
                read.formUnion(node.input)
                known.formUnion(node.output)
            }
            #expect(read.isSuperset(of: graph.initializer.map(\.name)), "\(preset.name)")
            #expect(graph.node.last?.output == ["logits"] && !graph.node.contains { $0.opType == "Dropout" }, "\(preset.name)")
        }
    }

    /// The exported graph, run by the plain-loop operators below as ONNX defines them, gives digits'
    /// evaluation logits: conv layout, BatchNorm statistics, dense transposition, flatten order.
    @Test func theGraphComputesDigitsLogits() throws {
        for spec in [Self.everyToken, "conv5k5p2-relu-pool2-dense16-relu-dense10", "flatten-dense32-bn-relu-drop0.5-dense10"] {
            let network = try Self.network(spec)
            let graph = try Self.model(network).graph
            let batch = 3
            var random = SystemRandomNumberGenerator()
            let pixels = (0..<(batch * 784)).map { _ in UInt8.random(in: 0...255, using: &random) }
            let normalizer = InputNormalizer()
            let input = FloatBuffer(capacity: batch * 784)
            for i in 0..<pixels.count { input.pointer[i] = normalizer.table[Int(pixels[i])] }
            let logits = network.forward(input.pointer, batch: batch, context: PassContext(mode: .evaluation))
            let expected = (0..<(batch * 10)).map { logits[$0] }
            let out = try ReferenceGraphRunner.run(graph, image: .init(shape: [batch, 1, 28, 28], values: pixels.map(Float.init)))
            #expect(out.shape == [batch, 10], "\(spec)")
            let worst = zip(out.values, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
            #expect(worst <= 1e-4, "\(spec): worst difference \(worst)")
        }
    }

    static func floats(_ data: Data) -> [Float] {
        stride(from: 0, to: data.count, by: 4).map { i in
            Float(bitPattern: UInt32(data[data.startIndex + i]) | UInt32(data[data.startIndex + i + 1]) << 8
                  | UInt32(data[data.startIndex + i + 2]) << 16 | UInt32(data[data.startIndex + i + 3]) << 24)
        }
    }

    static func dimension(_ d: Onnx_TensorShapeProto.Dimension) -> String {
        switch d.value {
        case .dimValue(let v): return String(v)
        case .dimParam(let p): return p
        case nil: return "?"
        }
    }
}

/// The operators `ONNXExport` writes, as the ONNX operator documents define them, in plain loops
/// over NCHW arrays: the oracle for the exported graph's meaning (onnxruntime checks it in
/// scripts/onnx-check.sh).
enum ReferenceGraphRunner {
    struct Tensor {
        var shape: [Int]
        var values: [Float]
    }

    struct Unsupported: Error, CustomStringConvertible { let description: String }

    static func run(_ graph: Onnx_GraphProto, image: Tensor) throws -> Tensor {
        var tensors = [String: Tensor]()
        for t in graph.initializer { tensors[t.name] = Tensor(shape: t.dims.map(Int.init), values: ONNXExportTests.floats(t.rawData)) }
        tensors["image"] = image
        for node in graph.node {
            let inputs = try node.input.map { name in
                guard let t = tensors[name] else { throw Unsupported(description: "\(node.name) reads unknown \(name)") }
                return t
            }
            var ints = [String: [Int]](), floats = [String: Float]()
            for a in node.attribute {
                ints[a.name] = a.type == .ints ? a.ints.map(Int.init) : [Int(a.i)]
                floats[a.name] = a.f
            }
            tensors[node.output[0]] = try evaluate(node.opType, inputs, ints: ints, floats: floats)
        }
        guard let logits = tensors["logits"] else { throw Unsupported(description: "no logits") }
        return logits
    }

    static func evaluate(_ op: String, _ x: [Tensor], ints: [String: [Int]], floats: [String: Float]) throws -> Tensor {
        let s = x[0].shape
        switch op {
        case "Div": return Tensor(shape: s, values: x[0].values.map { $0 / x[1].values[0] })
        case "Sub": return Tensor(shape: s, values: x[0].values.map { $0 - x[1].values[0] })
        case "Relu": return Tensor(shape: s, values: x[0].values.map { max($0, 0) })
        case "Flatten": return Tensor(shape: [s[0], s.dropFirst().reduce(1, *)], values: x[0].values)
        case "BatchNormalization":
            let c = s[1], inner = s.dropFirst(2).reduce(1, *), epsilon = floats["epsilon"] ?? 1e-5
            var y = x[0].values
            for i in 0..<y.count {
                let ch = (i / inner) % c
                y[i] = (y[i] - x[3].values[ch]) / (x[4].values[ch] + epsilon).squareRoot() * x[1].values[ch] + x[2].values[ch]
            }
            return Tensor(shape: s, values: y)
        case "GlobalAveragePool":
            let inner = s[2] * s[3]
            let y = (0..<(s[0] * s[1])).map { nc in (0..<inner).reduce(0) { $0 + Double(x[0].values[nc * inner + $1]) } / Double(inner) }
            return Tensor(shape: [s[0], s[1], 1, 1], values: y.map(Float.init))
        case "MaxPool":
            let k = ints["kernel_shape", default: [1]][0], stride = ints["strides", default: [1]][0]
            let oh = (s[2] - k) / stride + 1, ow = (s[3] - k) / stride + 1
            var y = [Float](repeating: -.infinity, count: s[0] * s[1] * oh * ow)
            for nc in 0..<(s[0] * s[1]) { for i in 0..<oh { for j in 0..<ow { for u in 0..<k { for v in 0..<k {
                y[(nc * oh + i) * ow + j] = max(y[(nc * oh + i) * ow + j], x[0].values[(nc * s[2] + i * stride + u) * s[3] + j * stride + v])
            } } } } }
            return Tensor(shape: [s[0], s[1], oh, ow], values: y)
        case "Conv":
            let w = x[1], o = w.shape[0], k = w.shape[2], stride = ints["strides", default: [1]][0], pad = ints["pads", default: [0]][0]
            let oh = (s[2] + 2 * pad - k) / stride + 1, ow = (s[3] + 2 * pad - k) / stride + 1
            var y = [Float](repeating: 0, count: s[0] * o * oh * ow)
            for n in 0..<s[0] { for oc in 0..<o { for i in 0..<oh { for j in 0..<ow {
                var sum = Double(x[2].values[oc])
                for c in 0..<s[1] { for u in 0..<k { for v in 0..<k {
                    let r = i * stride + u - pad, q = j * stride + v - pad
                    guard r >= 0, r < s[2], q >= 0, q < s[3] else { continue }
                    sum += Double(x[0].values[((n * s[1] + c) * s[2] + r) * s[3] + q]) * Double(w.values[((oc * s[1] + c) * k + u) * k + v])
                } } }
                y[((n * o + oc) * oh + i) * ow + j] = Float(sum)
            } } } }
            return Tensor(shape: [s[0], o, oh, ow], values: y)
        case "Gemm":
            guard ints["transB"] == [1] else { throw Unsupported(description: "Gemm without transB") }
            let (m, kk, n) = (s[0], s[1], x[1].shape[0])
            var y = [Float](repeating: 0, count: m * n)
            for r in 0..<m { for c in 0..<n {
                y[r * n + c] = Float((0..<kk).reduce(Double(x[2].values[c])) { $0 + Double(x[0].values[r * kk + $1]) * Double(x[1].values[c * kk + $1]) })
            } }
            return Tensor(shape: [m, n], values: y)
        default:
            throw Unsupported(description: "operator \(op)")
        }
    }
}
