import CounterRNG
import Foundation
import Testing
@testable import NeuralNet

/// The im2col+GEMM paths equal naive loops; optimizers and schedules equal hand-computed values.
@Suite struct ReferenceTests {
    func random(_ count: Int, _ seed: UInt64) -> [Float] {
        var r = KeyedRandom(seed: seed, purpose: .test)
        return (0..<count).map { _ in r.nextUniform(-1, 1) }
    }

    @Test(arguments: [(3, 1, 0), (3, 1, 1), (5, 2, 2), (4, 3, 1), (1, 1, 0)])
    func convolutionEqualsDirectLoops(kernel: Int, stride: Int, padding: Int) {
        let store = ParameterStore()
        let shape = Shape(channels: 3, height: 11, width: 9)
        let oc = 4, batch = 3
        let layer = Conv2D(name: "c", inputShape: shape, outputChannels: oc, kernelSize: kernel, stride: stride, padding: padding, store: store)
        store.seal(seed: 2)
        let values = random(store.parameterCount, 8), target = store.mutableParameters()
        for i in 0..<store.parameterCount { target[i] = values[i] }
        var x = random(batch * shape.count, 9)
        let y = x.withUnsafeMutableBufferPointer { layer.forward($0.baseAddress!, batch: batch, context: PassContext(mode: .training)) }
        let out = layer.outputShape
        let w = store.parameters, b = store.parameters + oc * shape.channels * kernel * kernel
        var worst: Float = 0
        for n in 0..<batch { for o in 0..<oc { for oy in 0..<out.height { for ox in 0..<out.width {
            var sum = Double(b[o])
            for c in 0..<shape.channels { for ky in 0..<kernel { for kx in 0..<kernel {
                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                guard iy >= 0, iy < shape.height, ix >= 0, ix < shape.width else { continue }
                sum += Double(w[((o * shape.channels + c) * kernel + ky) * kernel + kx]) * Double(x[((n * shape.channels + c) * shape.height + iy) * shape.width + ix])
            } } }
            worst = max(worst, abs(Float(sum) - y[((n * oc + o) * out.height + oy) * out.width + ox]))
        } } } }
        #expect(worst < 1e-4)
    }

    @Test func denseEqualsNaiveMatmul() {
        let store = ParameterStore()
        let layer = Dense(name: "d", inputShape: .vector(13), outputs: 7, store: store)
        store.seal(seed: 3)
        let values = random(100, 4), target = store.mutableParameters()
        for i in 0..<(7 * 13 + 7) { target[i] = values[i] }
        var x = random(5 * 13, 5)
        let y = x.withUnsafeMutableBufferPointer { layer.forward($0.baseAddress!, batch: 5, context: PassContext(mode: .training)) }
        var worst: Float = 0
        for n in 0..<5 { for o in 0..<7 {
            var sum = Double(store.parameters[7 * 13 + o])
            for i in 0..<13 { sum += Double(store.parameters[o * 13 + i]) * Double(x[n * 13 + i]) }
            worst = max(worst, abs(Float(sum) - y[n * 7 + o]))
        } }
        #expect(worst < 1e-5)
    }

    /// One parameter w with gradient g, updated twice.
    func optimizerTrace(_ kind: OptimizerKind, weightDecay: Float, gradients: [Float], lr: Float = 0.1) -> [Float] {
        let store = ParameterStore()
        _ = store.addParameter("w", shape: [1], initial: .ones, decays: true)
        store.seal(seed: 0)
        let optimizer = Optimizer(kind: kind, store: store, weightDecay: weightDecay)
        var trace = [Float]()
        for g in gradients {
            store.gradients[0] = g
            optimizer.step(learningRate: lr)
            trace.append(store.parameters[0])
        }
        return trace
    }

    @Test func sgdMomentumByHand() {
        // w=1, g=0.5, wd=0.1: grad 0.6, v 0.6, w 0.94; then g=0.5: grad 0.594, v 0.9*0.6+0.594=1.134, w 0.94-0.1134=0.8266
        let t = optimizerTrace(.sgd(momentum: 0.9, nesterov: false), weightDecay: 0.1, gradients: [0.5, 0.5])
        #expect(abs(t[0] - 0.94) < 1e-6 && abs(t[1] - 0.8266) < 1e-6)
    }

    @Test func nesterovByHand() {
        // grad 0.5, v 0.5, step 0.5+0.9*0.5=0.95 -> w 0.905; grad 0.5, v 0.95, step 0.5+0.855=1.355 -> 0.7695
        let t = optimizerTrace(.sgd(momentum: 0.9, nesterov: true), weightDecay: 0, gradients: [0.5, 0.5])
        #expect(abs(t[0] - 0.905) < 1e-6 && abs(t[1] - 0.7695) < 1e-6)
    }

    @Test func adamByHand() {
        // Step 1: m=0.1*g, v=0.001*g^2, mhat=g, vhat=g^2 -> w -= lr * g/(|g|+eps) = 0.1 -> 0.9.
        // Step 2 with g=-0.25: m=0.09*0.5... computed below in Double.
        let t = optimizerTrace(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), weightDecay: 0, gradients: [0.5, -0.25])
        #expect(abs(t[0] - 0.9) < 1e-6)
        let m = 0.9 * 0.05 + 0.1 * -0.25, v = 0.999 * 0.00025 + 0.001 * 0.0625
        let mhat = m / (1 - 0.81), vhat = v / (1 - 0.998001)
        #expect(abs(Double(t[1]) - (0.9 - 0.1 * mhat / (vhat.squareRoot() + 1e-8))) < 1e-5)
    }

    @Test func adamWDecouplesDecayButAdamDoesNot() {
        // AdamW: w = 1 - lr*wd*1 = 0.99, then Adam's unit step 0.1 -> 0.89.
        let decoupled = optimizerTrace(.adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), weightDecay: 0.1, gradients: [0.5])
        #expect(abs(decoupled[0] - 0.89) < 1e-6)
        // Adam with L2: grad 0.6 -> the normalised first step is still exactly lr.
        let coupled = optimizerTrace(.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), weightDecay: 0.1, gradients: [0.5])
        #expect(abs(coupled[0] - 0.9) < 1e-6)
    }

    @Test func weightDecaySkipsBiases() {
        let store = ParameterStore()
        _ = store.addParameter("w", shape: [1], initial: .ones, decays: true)
        _ = store.addParameter("b", shape: [1], initial: .ones, decays: false)
        store.seal(seed: 0)
        let optimizer = Optimizer(kind: .sgd(momentum: 0, nesterov: false), store: store, weightDecay: 0.5)
        optimizer.step(learningRate: 0.1)
        #expect(store.parameters[0] == 0.95)
        #expect(store.parameters[1] == 1)
    }

    @Test func schedulesByHand() {
        let constant = LearningRateSchedule(kind: .constant, peak: 0.1, warmupSteps: 4, totalSteps: 100)
        #expect(constant.rate(at: 0) == 0.025 && constant.rate(at: 3) == 0.1 && constant.rate(at: 50) == 0.1)
        let step = LearningRateSchedule(kind: .step(every: 10, factor: 0.5), peak: 0.2, totalSteps: 100)
        #expect(step.rate(at: 9) == 0.2 && step.rate(at: 10) == 0.1 && step.rate(at: 25) == 0.05)
        let cosine = LearningRateSchedule(kind: .cosine, peak: 1, warmupSteps: 10, totalSteps: 110)
        #expect(cosine.rate(at: 10) == 1)
        #expect(abs(cosine.rate(at: 60) - 0.5) < 1e-6)
        #expect(abs(cosine.rate(at: 110)) < 1e-6)
        let cycle = LearningRateSchedule(kind: .oneCycle(rise: 0.25), peak: 1, totalSteps: 100)
        #expect(abs(cycle.rate(at: 0) - 0.04) < 1e-6)
        #expect(abs(cycle.rate(at: 25) - 1) < 1e-6)
        #expect(abs(cycle.rate(at: 100) - 4e-6) < 1e-7)
        let halfway: Float = 0.04 + 0.96 * 0.5 * (1 - Float(cos(Double.pi * 0.48)))
        #expect(abs(cycle.rate(at: 12) - halfway) < 1e-5)
    }

    @Test func modelSpecsRoundTripAndPresetsHaveTheStatedSizes() throws {
        for preset in ModelSpec.presets {
            let spec = try ModelSpec.named(preset.name)
            #expect(try ModelSpec(parsing: spec.description) == spec)
            #expect(spec.description == preset.spec)
        }
        #expect(Network(spec: try ModelSpec.named("reference"), seed: 1).parameterCount == 857_930)
        #expect(Network(spec: try ModelSpec.named("seed-mlp"), seed: 1).parameterCount == 118_282)
        let custom = try ModelSpec(parsing: "conv8k3s2p1-bn-relu-pool3s2-gap-dense10")
        #expect(custom.layers[0] == .conv(outputChannels: 8, kernel: 3, stride: 2, padding: 1))
        #expect(custom.layers[2] == .relu && custom.layers[3] == .maxPool(kernel: 3, stride: 2))
        #expect(try ModelSpec(parsing: custom.description) == custom)
    }

    @Test(arguments: ["", "conv", "conv32", "conv32k5x", "dense10-foo", "flatten-dense12", "dense", "drop1.5-dense10",
                      "conv8k40-flatten-dense10", "flatten-conv8k3-flatten-dense10", "conv8k3p3-flatten-dense10"])
    func badSpecsAreRejectedWithTheReason(text: String) {
        #expect(throws: ModelSpecError.self) { try ModelSpec(parsing: text) }
    }

    /// Sizes that would overflow or exhaust memory are refused by the parser (specs also come from checkpoint files).
    @Test(arguments: [("conv9223372036854775807k1-flatten-dense10", "limit of 100000"),
                      ("flatten-dense4000000000-dense10", "limit of 100000"),
                      ("flatten-dense100000-dense100000-dense10", "100000000 parameters"),
                      ("conv256k3p1-conv4096k13p6-gap-dense10", "100000000 parameters"),
                      ("conv100000k1-flatten-dense10", "activation values per image"),
                      ("conv00000000000000000000001k1-flatten-dense10", "")])
    func oversizedSpecsAreRefusedBeforeAnyArithmetic(text: String, reason: String) throws {
        if reason.isEmpty {
            // Leading zeros are only a long way to write a small number.
            #expect(try ModelSpec(parsing: text).description == "conv1k1-flatten-dense10")
            return
        }
        do {
            _ = try ModelSpec(parsing: text)
            Issue.record("\(text) was accepted")
        } catch let error as ModelSpecError {
            #expect(error.description.contains(reason), "\(error)")
        }
    }
}
