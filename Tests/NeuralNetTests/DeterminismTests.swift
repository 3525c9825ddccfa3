import CounterRNG
import Testing
@testable import NeuralNet

@Suite struct DeterminismTests {
    /// 50 steps of a small BN+dropout conv net on random data; returns the parameter bytes.
    func train(seed: UInt64) -> [Float] {
        let spec = try! ModelSpec(parsing: "conv4k3p1-bn-relu-pool2-flatten-drop0.2-dense10")
        let network = Network(spec: spec, seed: seed)
        let optimizer = Optimizer(kind: .sgd(momentum: 0.9, nesterov: true), store: network.store, weightDecay: 1e-4)
        var random = KeyedRandom(seed: 123, purpose: .test)
        var x = (0..<(8 * 784)).map { _ in random.nextUniform(-1, 1) }
        let labels = (0..<8).map { UInt8($0 % 10) }
        for step in 0..<50 {
            network.store.zeroGradients()
            x.withUnsafeMutableBufferPointer { xp in labels.withUnsafeBufferPointer { yp in
                _ = network.accumulateGradients(input: xp.baseAddress!, labels: yp.baseAddress!, batch: 8,
                                                context: PassContext(mode: .training, seed: seed, step: UInt64(step)))
            } }
            optimizer.step(learningRate: 0.01)
        }
        return Array(network.store.parameterBuffer) + Array(network.store.bufferBuffer)
    }

    @Test func sameSeedIsBitIdenticalAndAnotherSeedDiffers() {
        let a = train(seed: 7), b = train(seed: 7), c = train(seed: 8)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(a != c)
    }

    /// BatchNorm followed by ReLU runs as one pass; turning the fusion off gives the same bits.
    @Test func fusedBatchNormReLUEqualsTheSeparateLayers() throws {
        let network = Network(spec: try ModelSpec(parsing: "conv4k3p1-bn-relu-pool2-flatten-dense16-bn-relu-dense10"), seed: 3)
        let norms = network.layers.compactMap { $0 as? BatchNorm }, relus = network.layers.compactMap { $0 as? ReLU }
        #expect(norms.count == 2 && norms.allSatisfy(\.rectifiesOutput) && relus.allSatisfy(\.inputIsRectified))
        var random = KeyedRandom(seed: 9, purpose: .test)
        let input = (0..<(8 * 784)).map { _ in random.nextUniform(-1, 1) }
        let labels = (0..<8).map { UInt8($0 % 10) }
        func pass() -> [UInt32] {
            network.store.zeroGradients()
            var x = input
            let loss = x.withUnsafeMutableBufferPointer { xp in labels.withUnsafeBufferPointer { yp in
                network.accumulateGradients(input: xp.baseAddress!, labels: yp.baseAddress!, batch: 8,
                                            context: PassContext(mode: .training, seed: 1, step: 1))
            } }
            return [Float(loss.lossSum).bitPattern] + network.store.gradientBuffer.map(\.bitPattern)
        }
        let fused = pass()
        for norm in norms { norm.rectifiesOutput = false }
        for relu in relus { relu.inputIsRectified = false }
        #expect(pass() == fused)
    }

    @Test func initialisationIsHeScaled() {
        let network = Network(spec: try! ModelSpec(parsing: "flatten-dense512-relu-dense10"), seed: 1)
        let w = Array(network.store.parameterBuffer[0..<(512 * 784)])
        let mean = w.reduce(0, +) / Float(w.count)
        let variance = w.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(w.count)
        #expect(abs(mean) < 1e-3)
        #expect(abs(variance / (2 / 784) - 1) < 0.02)
    }

    @Test func dropoutKeepsTheStatedFractionAndScales() {
        let layer = Dropout(name: "d", inputShape: .vector(10_000), rate: 0.3, layerIndex: 0)
        var x = [Float](repeating: 1, count: 10_000)
        let y = x.withUnsafeMutableBufferPointer { layer.forward($0.baseAddress!, batch: 1, context: PassContext(mode: .training, seed: 1, step: 1)) }
        let kept = (0..<10_000).filter { y[$0] != 0 }
        #expect(abs(Double(kept.count) / 10_000 - 0.7) < 0.02)
        #expect(kept.allSatisfy { abs(y[$0] - 1 / 0.7) < 1e-6 })
        let e = x.withUnsafeMutableBufferPointer { layer.forward($0.baseAddress!, batch: 1, context: PassContext(mode: .evaluation)) }
        #expect((0..<10_000).allSatisfy { e[$0] == 1 })
    }
}
