import CounterRNG
import Testing
@testable import NeuralNet

@Suite struct DeterminismTests {
    /// `steps` steps of a model (by default a small BN+dropout conv net) on one batch of random data;
    /// returns the parameters and buffers.
    func train(_ spec: String = "conv4k3p1-bn-relu-pool2-flatten-drop0.2-dense10", seed: UInt64, batch: Int = 8,
               steps: Int = 50, optimizer kind: OptimizerKind = .sgd(momentum: 0.9, nesterov: true)) -> [Float] {
        let network = Network(spec: try! ModelSpec(parsing: spec), seed: seed)
        let optimizer = Optimizer(kind: kind, store: network.store, weightDecay: 1e-4)
        var random = KeyedRandom(seed: 123, purpose: .test)
        var x = (0..<(batch * 784)).map { _ in random.nextUniform(-1, 1) }
        let labels = (0..<batch).map { UInt8($0 % 10) }
        for step in 0..<steps {
            network.store.zeroGradients()
            x.withUnsafeMutableBufferPointer { xp in labels.withUnsafeBufferPointer { yp in
                _ = network.accumulateGradients(input: xp.baseAddress!, labels: yp.baseAddress!, batch: batch,
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

    /// One forward, loss and backward of `network` on fixed random data (loss bits and gradients),
    /// and its evaluation-mode logits.
    private func passes(_ network: Network, batch: Int, seed: UInt64) -> (loss: UInt32, gradients: [Float], logits: [Float]) {
        var random = KeyedRandom(seed: seed, purpose: .test)
        let input = (0..<(batch * 784)).map { _ in random.nextUniform(-1, 1) }
        let labels = (0..<batch).map { UInt8($0 % 10) }
        var x = input
        // Evaluation first: training moves the running statistics.
        let logits = x.withUnsafeMutableBufferPointer { xp in
            Array(UnsafeBufferPointer(start: network.forward(xp.baseAddress!, batch: batch, context: PassContext(mode: .evaluation)),
                                      count: batch * 10))
        }
        network.store.zeroGradients()
        x = input
        let loss = x.withUnsafeMutableBufferPointer { xp in labels.withUnsafeBufferPointer { yp in
            network.accumulateGradients(input: xp.baseAddress!, labels: yp.baseAddress!, batch: batch,
                                        context: PassContext(mode: .training, seed: 1, step: 1))
        } }
        return (Float(loss.lossSum).bitPattern, Array(network.store.gradientBuffer), logits)
    }

    /// The fusion pass groups the layers as documented: bn-relu-pool2 after a convolution as one
    /// pass (also with a 13 x 13 input, whose last row and column the pooling drops), bn-relu on a
    /// vector, relu-pool without a BatchNorm.
    @Test func fusionGroupsTheLayers() throws {
        let spec = try ModelSpec(parsing: "conv4k3p1-bn-relu-pool2-conv6k2-bn-relu-pool2-flatten-dense16-bn-relu-dense10")
        #expect(LayerFusion.groups(spec.layers).map(\.kind)
                == [.single, .batchNormReLUMaxPool(onePass: true), .single, .batchNormReLUMaxPool(onePass: true), .single, .single,
                    .batchNormReLU, .single])
        let other = try ModelSpec(parsing: "conv4k3-relu-pool3s2-bn-relu-pool2-gap-dense10")
        #expect(LayerFusion.groups(other.layers).map(\.kind) == [.single, .reluMaxPool, .batchNormReLUMaxPool(onePass: false), .single, .single])
        #expect(LayerFusion.groups(spec.layers, fusions: []).allSatisfy { $0.kind == .single })
        #expect(Network(spec: spec, seed: 1).layers.count == 8 && Network(spec: spec, seed: 1, fusions: []).layers.count == 13)
    }

    /// Fused layers against the separate ones: with the ReLU's work moved into its neighbours, the same
    /// bits; with BatchNorm → ReLU → pooling as one pass too, the same forward pass (loss bits) and the
    /// same gradients up to the order of two per-channel sums.
    @Test func fusedLayersEqualTheSeparateLayers() throws {
        let spec = try ModelSpec(parsing: "conv4k3p1-bn-relu-pool2-conv6k2-bn-relu-pool2-flatten-dense16-bn-relu-dense10")
        let fused = passes(Network(spec: spec, seed: 3), batch: 8, seed: 9)
        let reluOnly = passes(Network(spec: spec, seed: 3, fusions: .relu), batch: 8, seed: 9)
        let separate = passes(Network(spec: spec, seed: 3, fusions: []), batch: 8, seed: 9)
        // Evaluation normalises with the running statistics: the one pass as (x - mean) * invStd * gamma + beta,
        // the separate layers as a * x + b; the same up to rounding.
        #expect(zip(fused.logits, reluOnly.logits).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        #expect(reluOnly.loss == fused.loss)
        let scale = reluOnly.gradients.map(abs).max() ?? 1
        let worst = zip(fused.gradients, reluOnly.gradients).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "largest difference \(worst) of gradients up to \(scale)")
        #expect(separate.loss == reluOnly.loss && separate.gradients.map(\.bitPattern) == reluOnly.gradients.map(\.bitPattern))
        #expect(separate.logits.map(\.bitPattern) == reluOnly.logits.map(\.bitPattern))
    }

    /// A ReLU before a pooling runs inside the pooling's pass (no BatchNorm before it; 2x2 and 3x3
    /// stride 2): the same loss, gradients and evaluation outputs, bit for bit, as the separate layers.
    @Test func reluInsidePoolingEqualsTheSeparateLayers() throws {
        for text in ["conv4k3-relu-pool2-conv6k3-relu-pool2-flatten-drop0.3-dense10", "conv4k3-relu-pool3s2-flatten-dense10"] {
            let spec = try ModelSpec(parsing: text)
            #expect(Network(spec: spec, seed: 4).layers.contains { $0 is ReLUMaxPool2D })
            let fused = passes(Network(spec: spec, seed: 4), batch: 6, seed: 10)
            let separate = passes(Network(spec: spec, seed: 4, fusions: []), batch: 6, seed: 10)
            #expect(fused.loss == separate.loss && fused.gradients.map(\.bitPattern) == separate.gradients.map(\.bitPattern))
            #expect(fused.logits.map(\.bitPattern) == separate.logits.map(\.bitPattern))
        }
    }

    /// One image alone gives the bits it gives inside a batch: alone, its convolutions are split
    /// across the threads by output channels (the latency path); in a batch, each sample runs on one
    /// thread. And the weights packed for evaluation are packed again once the parameters change.
    /// Every kernel set sums a GEMM's elements in an order that depends on k alone, so this holds on
    /// each of them.
    @Test func oneImageEqualsItsRowOfABatchAndPackedWeightsFollowChanges() throws {
        let spec = try ModelSpec(parsing: "conv16k5p2-bn-relu-pool2-conv32k3p1-bn-relu-pool2-flatten-dense40-relu-dense10")
        let network = Network(spec: spec, seed: 5)
        defer { Kernels.useThreads(nil) }
        var random = KeyedRandom(seed: 11, purpose: .test)
        let input = (0..<(5 * 784)).map { _ in random.nextUniform(0, 1) }
        func logits(_ net: Network, _ images: ArraySlice<Float>, batch: Int, threads: Int = 2) -> [Float] {
            Kernels.useThreads(threads)
            var x = Array(images)
            return x.withUnsafeMutableBufferPointer { xp in
                Array(UnsafeBufferPointer(start: net.forward(xp.baseAddress!, batch: batch, context: PassContext(mode: .evaluation)),
                                          count: batch * 10))
            }
        }
        func sameRow(_ alone: [Float], _ row: ArraySlice<Float>) -> Bool { alone.map(\.bitPattern) == row.map(\.bitPattern) }
        let batched = logits(network, input[...], batch: 5)
        for n in 0..<5 {
            let alone = logits(network, input[(n * 784)..<((n + 1) * 784)], batch: 1)
            #expect(sameRow(alone, batched[(n * 10)..<((n + 1) * 10)]), "image \(n)")
            #expect(logits(network, input[(n * 784)..<((n + 1) * 784)], batch: 1, threads: 1).map(\.bitPattern) == alone.map(\.bitPattern),
                    "image \(n) alone on 1 and 2 threads")
        }
        #expect(logits(network, input[...], batch: 5).map(\.bitPattern) == batched.map(\.bitPattern))
        #expect(logits(network, input[...], batch: 5, threads: 1).map(\.bitPattern) == batched.map(\.bitPattern))
        let w = network.store.mutableParameters()
        for i in 0..<network.store.parameterCount { w[i] *= 1.25 }
        let changed = logits(network, input[...], batch: 5)
        #expect(changed != batched)
        // A network that never packed the old weights gives the same bits.
        let fresh = Network(spec: spec, seed: 9)
        _ = fresh.store.mutableParameterBuffer().update(fromContentsOf: network.store.parameterBuffer)
        _ = fresh.store.bufferBuffer.update(fromContentsOf: network.store.bufferBuffer)
        #expect(logits(fresh, input[...], batch: 5).map(\.bitPattern) == changed.map(\.bitPattern))
        #expect(sameRow(logits(network, input[0..<784], batch: 1), changed[0..<10]))
    }

    /// 20 steps with 1 and with 2 kernel threads give bit-identical parameters on the kernel set in
    /// use: convolutions (BatchNorm, pooling) and a hidden dense layer large enough that its GEMMs are
    /// split across the threads.
    @Test func trainingDoesNotDependOnTheThreadCount() {
        let spec = "conv8k5p2-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-dense64-relu-drop0.2-dense10"
        func train(threads: Int) -> [UInt32] {
            Kernels.useThreads(threads)
            defer { Kernels.useThreads(nil) }
            return self.train(spec, seed: 3, batch: 32, steps: 20, optimizer: .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8))
                .map(\.bitPattern)
        }
        #expect(train(threads: 1) == train(threads: 2))
    }

    /// Every kernel set this CPU runs trains as the plain C reference does: the same GEMM bits, and
    /// the other passes equal (the generic C kernels, compiled for the set) or within rounding (the
    /// hand-written AVX-512 ones, and Winograd's transforms), so after 6 steps the parameters agree
    /// to 1e-4 of their scale. (SGD: Adam's normalised step would turn the rounding of a gradient
    /// near zero into a whole step of either sign.)
    @Test(arguments: Kernels.availableISAs.filter { $0 != .reference })
    func trainingOnEveryKernelSetFollowsTheReference(isa: Kernels.ISA) {
        let spec = "conv16k3p1-bn-relu-pool2-conv16k3p1-bn-relu-pool2-flatten-drop0.2-dense10"
        let optimizer = OptimizerKind.sgd(momentum: 0.9, nesterov: true)
        let fast = Kernels.withISA(isa) { train(spec, seed: 4, batch: 8, steps: 6, optimizer: optimizer) }
        let reference = Kernels.withISA(.reference) { train(spec, seed: 4, batch: 8, steps: 6, optimizer: optimizer) }
        let scale = reference.map(abs).max() ?? 1
        let worst = zip(fast, reference).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4 * scale, "\(isa): largest difference \(worst) of parameters up to \(scale)")
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
