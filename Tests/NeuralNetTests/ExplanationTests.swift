import CounterRNG
import Testing
@testable import NeuralNet

/// The explanation API: the gradient of a class's logit at a layer boundary against finite
/// differences of that logit (the layers above the boundary rerun on a perturbed activation),
/// Grad-CAM (and its HiResCAM fallback) against their formulas on hand-built cases, and an MLP's saliency against finite
/// differences at the input.
///
/// Central differences with h = 1e-2 in Float32 on logits of order 1 carry about 1e-5 of rounding;
/// we require ||analytic - numeric|| / (||analytic|| + ||numeric||) < 1e-2, and that the check
/// rejects the analytic gradient with every third element negated (so it cannot pass by accident).
/// The inputs are fixed, so where ReLU and max pooling have kinks is fixed too: these cases keep
/// clear of them.
@Suite struct ExplanationTests {
    static let h: Float = 1e-2
    static let tolerance: Double = 1e-2

    func randomValues(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
        var random = KeyedRandom(seed: seed, purpose: .test)
        return (0..<count).map { _ in random.nextUniform(range.lowerBound, range.upperBound) }
    }

    func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        var diff = 0.0, na = 0.0, nb = 0.0
        for i in 0..<a.count { diff += (a[i] - b[i]) * (a[i] - b[i]); na += a[i] * a[i]; nb += b[i] * b[i] }
        return diff.squareRoot() / max(1e-12, na.squareRoot() + nb.squareRoot())
    }

    /// d logits[k] / d activation at `boundary`, by central differences through `logits(fromBoundary:activation:)`.
    func numericGradient(_ network: Network, boundary: Int, activation: [Float], classIndex k: Int) -> [Double] {
        var a = activation
        return (0..<a.count).map { i in
            let keep = a[i]
            a[i] = keep + ExplanationTests.h
            let plus = network.logits(fromBoundary: boundary, activation: a)[k]
            a[i] = keep - ExplanationTests.h
            let minus = network.logits(fromBoundary: boundary, activation: a)[k]
            a[i] = keep
            return (Double(plus) - Double(minus)) / Double(2 * ExplanationTests.h)
        }
    }

    /// The analytic gradient agrees with the numeric one, and a wrong gradient would not.
    func expectMatches(_ analytic: [Float], _ numeric: [Double], _ label: String) {
        let a = analytic.map(Double.init)
        #expect(a.count == numeric.count, "\(label): \(a.count) gradient values for \(numeric.count) activations")
        guard a.count == numeric.count else { return }
        let error = relativeError(a, numeric)
        #expect(error < ExplanationTests.tolerance, "\(label): relative error \(error)")
        #expect(a.contains { $0 != 0 }, "\(label): the gradient is all zero")
        var wrong = a
        for i in stride(from: 0, to: wrong.count, by: 3) { wrong[i] = -wrong[i] }
        #expect(relativeError(wrong, numeric) > ExplanationTests.tolerance, "\(label): the check is not sensitive")
    }

    /// conv, BatchNorm+ReLU+2x2 pooling (one fused pass), flatten, dense: with running statistics
    /// and BatchNorm parameters away from their initial values, so evaluation mode is not an identity.
    func convNetwork(fusions: LayerFusions = .all) throws -> Network {
        let spec = try ModelSpec(parsing: "conv4k3p1-bn-relu-pool2-flatten-dense5", input: Shape(channels: 1, height: 8, width: 8), classes: 5)
        let network = Network(spec: spec, seed: 11, fusions: fusions)
        let store = network.store
        for entry in store.parameterEntries where entry.name.hasPrefix("layers.1.") {
            let values = randomValues(entry.slice.count, seed: 21, range: entry.name.hasSuffix("weight") ? 0.5...1.5 : -0.3...0.3)
            for (i, v) in values.enumerated() { store.mutableParameters()[entry.slice.offset + i] = v }
        }
        for entry in store.bufferEntries {
            let values = randomValues(entry.slice.count, seed: 22, range: entry.name.hasSuffix("running_var") ? 0.5...2 : -0.2...0.2)
            for (i, v) in values.enumerated() { store.buffers[entry.slice.offset + i] = v }
        }
        return network
    }

    /// Every boundary: the input (through the first convolution, which training never asks for an
    /// input gradient), the convolution's output (through the fused block), the pooled block output
    /// Grad-CAM reads, the flattened vector and the logits.
    @Test func gradientAtEveryBoundaryMatchesFiniteDifferences() throws {
        let network = try convNetwork()
        #expect(network.layers.count == 4, "conv, bn+relu+pool, flatten, dense")
        #expect(network.gradCAMBoundary == 2, "Grad-CAM reads the fused block's pooled output")
        #expect(network.shape(atBoundary: 2) == Shape(channels: 4, height: 4, width: 4))
        #expect(network.specLayer(atBoundary: 2)?.index == 3 && network.specLayer(atBoundary: 2)?.token == "pool2")
        let image = randomValues(64, seed: 5)
        for boundary in 0...network.layers.count {
            for classIndex in [nil, 3] as [Int?] {
                let pass = image.withUnsafeBufferPointer { network.gradient(ofClass: classIndex, image: $0.baseAddress!, atBoundary: boundary) }
                #expect(pass.activation.count == network.shape(atBoundary: boundary).count)
                let numeric = numericGradient(network, boundary: boundary, activation: pass.activation, classIndex: pass.classIndex)
                expectMatches(pass.gradient, numeric, "boundary \(boundary), class \(pass.classIndex)")
                // The activation recorded is the one the layers above turn into these logits.
                let again = network.logits(fromBoundary: boundary, activation: pass.activation)
                #expect(zip(again, pass.logits).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }, "boundary \(boundary): logits \(again) vs \(pass.logits)")
            }
        }
    }

    /// The separate layers (no fusion) give the same logits and the same gradient at the input.
    @Test func fusedAndSeparateLayersAgree() throws {
        let fused = try convNetwork(), separate = try convNetwork(fusions: [])
        #expect(separate.layers.count == 6)
        #expect(separate.gradCAMBoundary == 4, "after the separate pooling layer")
        let image = randomValues(64, seed: 6)
        let a = image.withUnsafeBufferPointer { fused.gradient(image: $0.baseAddress!, atBoundary: 0) }
        let b = image.withUnsafeBufferPointer { separate.gradient(image: $0.baseAddress!, atBoundary: 0) }
        #expect(a.classIndex == b.classIndex)
        #expect(relativeError(a.gradient.map(Double.init), b.gradient.map(Double.init)) < 1e-5)
        let camA = image.withUnsafeBufferPointer { fused.explain($0.baseAddress!) }
        let camB = image.withUnsafeBufferPointer { separate.explain($0.baseAddress!) }
        #expect(zip(camA.heat, camB.heat).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    /// The explanation runs in evaluation mode and leaves the store as it found it.
    @Test func explainingChangesNothing() throws {
        let network = try convNetwork()
        let store = network.store
        for i in 0..<store.parameterCount { store.gradients[i] = Float(i % 13) * 0.25 }
        let gradients = Array(store.gradientBuffer), buffers = Array(store.bufferBuffer), parameters = Array(store.parameterBuffer)
        var image = randomValues(64, seed: 7)
        let explanation = image.withUnsafeBufferPointer { network.explain($0.baseAddress!) }
        #expect(Array(store.gradientBuffer) == gradients)
        #expect(Array(store.bufferBuffer) == buffers)
        #expect(Array(store.parameterBuffer) == parameters)
        let logits = image.withUnsafeMutableBufferPointer { buffer in
            let out = network.forward(buffer.baseAddress!, batch: 1, context: PassContext(mode: .evaluation))
            return Array(UnsafeBufferPointer(start: out, count: network.classes))
        }
        #expect(logits == explanation.logits)
        #expect(explanation.classIndex == logits.indices.max { logits[$0] < logits[$1] })
        #expect(explanation.method == .gradCAM(boundary: 2))
        #expect(explanation.heat.count == 64 && explanation.heat.allSatisfy { (0...1).contains($0) })
    }

    /// Grad-CAM's three steps on a 2-channel 2x2 activation worked by hand.
    @Test func gradCAMFormulaByHand() {
        let shape = Shape(channels: 2, height: 2, width: 2)
        let activation: [Float] = [1, 2, 3, 8, /* channel 1 */ 4, 0, 1, 2]
        let gradient: [Float] = [0.5, 0.5, 1, 0, /* channel 1 */ -1, -1, 0, 0]
        #expect(GradCAM.channelWeights(gradient: gradient, shape: shape) == [0.5, -0.5])
        // 0.5 * A0 - 0.5 * A1 = [-1.5, 1, 1, 3]; the ReLU clears the first.
        let map = GradCAM.map(activation: activation, gradient: gradient, shape: shape)
        #expect(map == [0, 1, 1, 3])
        // Bilinear 2 -> 4 with pixel centres aligned: [a, b] becomes [a, 3a/4 + b/4, a/4 + 3b/4, b].
        let up = HeatMap.upsampled(map, height: 2, width: 2, toHeight: 4, toWidth: 4)
        let expected: [Float] = [0, 0.25, 0.75, 1,
                                 0.25, 0.5625, 1.1875, 1.5,
                                 0.75, 1.1875, 2.0625, 2.5,
                                 1, 1.5, 2.5, 3]
        #expect(zip(up, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "\(up)")
        let heat = HeatMap.normalized(up)
        #expect(zip(heat, expected).allSatisfy { abs($0 - $1 / 3) < 1e-6 }, "\(heat)")
        #expect(HeatMap.normalized([2, 2, 2]) == [0, 0, 0], "a flat map has no hot spot")
        #expect(HeatMap.normalized([1, .nan, 0]) == [0, 0, 0], "nor has a map that is not a number")
    }

    /// conv (1x1, 2 channels) -> gap -> dense on a 3x3 image, every weight set by hand: the logit is
    /// sum_c W_kc mean(A_c) + b_k, so the gradient at A_c is W_kc / 9 everywhere and Grad-CAM's map
    /// is ReLU(sum_c W_kc A_c) / 9, which for these weights is ReLU(0.5 - x) / 9 for class 0.
    @Test func gradCAMOfAHandBuiltNetwork() throws {
        let spec = try ModelSpec(parsing: "conv2k1-gap-dense2", input: Shape(channels: 1, height: 3, width: 3), classes: 2)
        let network = Network(spec: spec, seed: 1)
        let values: [String: [Float]] = [
            "layers.0.weight": [2, -1], "layers.0.bias": [0.5, 0],       // A0 = 2x + 0.5, A1 = -x
            "layers.2.weight": [1, 3, /* class 1 */ -1, 0.5], "layers.2.bias": [0.1, 0],
        ]
        for entry in network.store.parameterEntries {
            let v = try #require(values[entry.name], "\(entry.name) set by hand")
            for (i, x) in v.enumerated() { network.store.mutableParameters()[entry.slice.offset + i] = x }
        }
        #expect(network.gradCAMBoundary == 1, "the convolution's output; gap makes a vector")
        let x: [Float] = [-1, -0.5, 0, 0.25, 0.5, 0.75, 1, 0.4, -0.4]
        let mean = x.reduce(0, +) / 9
        let explanation = x.withUnsafeBufferPointer { network.explain($0.baseAddress!) }
        // logit 0 = mean(A0) + 3 mean(A1) + 0.1 = 0.6 - mean(x); logit 1 = -mean(A0) + 0.5 mean(A1) = -0.5 - 2.5 mean(x).
        #expect(abs(explanation.logits[0] - (0.6 - mean)) < 1e-5 && abs(explanation.logits[1] - (-0.5 - 2.5 * mean)) < 1e-5)
        #expect(explanation.classIndex == 0)
        let pass = x.withUnsafeBufferPointer { network.gradient(image: $0.baseAddress!, atBoundary: 1) }
        let dA = [Float](repeating: 1.0 / 9, count: 9) + [Float](repeating: 3.0 / 9, count: 9)   // W_0c / 9, channel by channel
        #expect(zip(pass.gradient, dA).allSatisfy { abs($0 - $1) < 1e-6 }, "\(pass.gradient)")
        let map = x.map { max(0, 0.5 - $0) / 9 }
        let expected = map.map { $0 / map.max()! }   // min is 0: x = 0.5, 0.75, 1 are cleared
        #expect(zip(explanation.heat, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(explanation.heat) vs \(expected)")
        // Class 1: ReLU(-A0 + 0.5 A1) / 9 = ReLU(-2.5x - 0.5) / 9, hot only where x < -0.2.
        let other = x.withUnsafeBufferPointer { network.explain($0.baseAddress!, classIndex: 1) }
        let map1 = x.map { max(0, -2.5 * $0 - 0.5) / 9 }
        #expect(other.classIndex == 1)
        #expect(zip(other.heat, map1.map { $0 / map1.max()! }).allSatisfy { abs($0 - $1) < 1e-5 }, "\(other.heat)")
    }

    /// Behind flatten and dense, Grad-CAM's spatial mean of the gradient can be negative for every
    /// channel where the image is active: its map is 0 everywhere, and HiResCAM's ReLU(G ⊙ A) is drawn
    /// instead. conv (1x1, one channel: A = x + 2, all positive) -> flatten -> dense on a 2x2 image:
    /// the gradient at A is class 0's weights [3, 1, -4, -4], their mean -1, so Grad-CAM's map is
    /// ReLU(-A) = 0 and HiResCAM's is [3 A0, A1, 0, 0].
    @Test func hiResCAMWhenGradCAMIsZeroEverywhere() throws {
        let spec = try ModelSpec(parsing: "conv1k1-flatten-dense2", input: Shape(channels: 1, height: 2, width: 2), classes: 2)
        let network = Network(spec: spec, seed: 1)
        let values: [String: [Float]] = [
            "layers.0.weight": [1], "layers.0.bias": [2],
            "layers.2.weight": [3, 1, -4, -4, /* class 1 */ 1, 1, 1, 1], "layers.2.bias": [0, 0],
        ]
        for entry in network.store.parameterEntries {
            let v = try #require(values[entry.name], "\(entry.name) set by hand")
            for (i, x) in v.enumerated() { network.store.mutableParameters()[entry.slice.offset + i] = x }
        }
        #expect(network.gradCAMBoundary == 1)
        let x: [Float] = [0.5, -0.5, 0.25, 0]   // A = [2.5, 1.5, 2.25, 2]
        let pass = x.withUnsafeBufferPointer { network.gradient(ofClass: 0, image: $0.baseAddress!, atBoundary: 1) }
        #expect(pass.activation == [2.5, 1.5, 2.25, 2] && pass.gradient == [3, 1, -4, -4])
        #expect(GradCAM.map(activation: pass.activation, gradient: pass.gradient, shape: pass.shape) == [0, 0, 0, 0])
        #expect(GradCAM.positionwiseMap(activation: pass.activation, gradient: pass.gradient, shape: pass.shape) == [7.5, 1.5, 0, 0])
        let explanation = x.withUnsafeBufferPointer { network.explain($0.baseAddress!, classIndex: 0) }
        #expect(explanation.method == .positionwiseGradCAM(boundary: 1))
        #expect(zip(explanation.heat, [1, 0.2, 0, 0] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(explanation.heat)")
        #expect(!explanation.isFlat)
        // Class 1 (weights all 1) is Grad-CAM's ordinary case: its map is A itself.
        let other = x.withUnsafeBufferPointer { network.explain($0.baseAddress!, classIndex: 1) }
        #expect(other.method == .gradCAM(boundary: 1))
        #expect(zip(other.heat, [1, 0, 0.75, 0.5] as [Float]).allSatisfy { abs($0 - $1) < 1e-6 }, "\(other.heat)")
    }

    /// A network without convolutions is explained by |d logit / d input|, checked against finite
    /// differences of the logit at the input.
    @Test func mlpSaliencyMatchesFiniteDifferences() throws {
        let spec = try ModelSpec(parsing: "flatten-dense12-relu-dense4", input: Shape(channels: 1, height: 5, width: 5), classes: 4)
        let network = Network(spec: spec, seed: 3)
        #expect(network.gradCAMBoundary == nil)
        let image = randomValues(25, seed: 9)
        let explanation = image.withUnsafeBufferPointer { network.explain($0.baseAddress!) }
        #expect(explanation.method == .inputGradient)
        let pass = image.withUnsafeBufferPointer { network.gradient(image: $0.baseAddress!, atBoundary: 0) }
        #expect(pass.classIndex == explanation.classIndex)
        let numeric = numericGradient(network, boundary: 0, activation: image, classIndex: pass.classIndex)
        expectMatches(pass.gradient, numeric, "MLP input gradient")
        // The heat map is |gradient| scaled to 0...1: against the numeric gradient's.
        let size = numeric.map { abs($0) }
        let lo = size.min()!, hi = size.max()!
        let expected = size.map { ($0 - lo) / (hi - lo) }
        let worst = zip(explanation.heat, expected).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 1e-2, "saliency differs from the finite differences' by \(worst)")
    }
}
