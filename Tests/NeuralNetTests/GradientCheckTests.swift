import CounterRNG
import Foundation
import Testing
@testable import NeuralNet

/// Finite-difference checks of every layer's input and parameter gradients.
///
/// The loss is L = sum(output * R) for a fixed random R, so dL/d(output) = R. Central
/// differences with h = 1e-2 in Float32 carry rounding error of about 1e-7·|L|/h ≈ 1e-4 here;
/// we require the relative error ||analytic - numeric|| / (||analytic|| + ||numeric||) < 1e-2.
/// Random gradients give about 1, so the check cannot pass by accident. Inputs are kept away
/// from the kinks of ReLU and max pooling (distinct values), where no derivative exists.
@Suite struct GradientCheckTests {
    static let h: Float = 1e-2
    static let tolerance: Double = 1e-2

    struct Case {
        let layer: Layer
        let store: ParameterStore
        let batch: Int
        let context: PassContext
    }

    func randomValues(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var random = KeyedRandom(seed: seed, purpose: .test)
        return (0..<count).map { _ in random.nextUniform(-scale, scale) }
    }

    /// Inputs whose values are spread so no two in a pooling window tie and none sits at 0.
    func spreadValues(_ count: Int, seed: UInt64) -> [Float] {
        let order = keyedPermutation(count: count, seed: seed, purpose: .test)
        return order.map { Float(Int($0) - count / 2) / Float(count) * 4 + 0.013 }
    }

    /// Layers may overwrite their input (ReLU works in place), so each pass gets a fresh copy in
    /// `scratch`, which outlives the pass (backward reads the input the layer cached).
    func loss(_ layer: Layer, _ input: inout [Float], batch: Int, weights r: [Float], context: PassContext,
              scratch: FloatBuffer = FloatBuffer()) -> Double {
        let x = scratch.reserve(input.count)
        input.withUnsafeBufferPointer { x.update(from: $0.baseAddress!, count: $0.count) }
        let out = layer.forward(x, batch: batch, context: context)
        var sum = 0.0
        for i in 0..<r.count { sum += Double(out[i]) * Double(r[i]) }
        return sum
    }

    func relativeError(_ a: [Double], _ b: [Double]) -> Double {
        var diff = 0.0, na = 0.0, nb = 0.0
        for i in 0..<a.count { diff += (a[i] - b[i]) * (a[i] - b[i]); na += a[i] * a[i]; nb += b[i] * b[i] }
        return diff.squareRoot() / max(1e-12, na.squareRoot() + nb.squareRoot())
    }

    func check(_ c: Case, input initial: [Float], label: String) {
        var input = initial
        let outCount = c.batch * c.layer.outputShape.count
        let r = randomValues(outCount, seed: 77)
        // Analytic.
        c.store.zeroGradients()
        let scratch = FloatBuffer()
        _ = loss(c.layer, &input, batch: c.batch, weights: r, context: c.context, scratch: scratch)
        var dOut = r
        let dx = dOut.withUnsafeMutableBufferPointer { c.layer.backward($0.baseAddress!, batch: c.batch, needsInputGradient: true) }
        let analyticInput = (0..<input.count).map { Double(dx![$0]) }
        let analyticParams = (0..<c.store.parameterCount).map { Double(c.store.gradients[$0]) }
        let savedBuffers = Array(c.store.bufferBuffer)
        // Numeric, input.
        var numericInput = [Double]()
        for i in 0..<input.count {
            let keep = input[i]
            input[i] = keep + GradientCheckTests.h
            let plus = loss(c.layer, &input, batch: c.batch, weights: r, context: c.context)
            input[i] = keep - GradientCheckTests.h
            let minus = loss(c.layer, &input, batch: c.batch, weights: r, context: c.context)
            input[i] = keep
            numericInput.append((plus - minus) / Double(2 * GradientCheckTests.h))
        }
        let inputError = relativeError(analyticInput, numericInput)
        #expect(inputError < GradientCheckTests.tolerance, "\(label): input gradient relative error \(inputError)")
        // Numeric, parameters.
        if c.store.parameterCount > 0 {
            var numericParams = [Double]()
            for i in 0..<c.store.parameterCount {
                let keep = c.store.parameters[i]
                c.store.mutableParameters()[i] = keep + GradientCheckTests.h
                let plus = loss(c.layer, &input, batch: c.batch, weights: r, context: c.context)
                c.store.mutableParameters()[i] = keep - GradientCheckTests.h
                let minus = loss(c.layer, &input, batch: c.batch, weights: r, context: c.context)
                c.store.mutableParameters()[i] = keep
                numericParams.append((plus - minus) / Double(2 * GradientCheckTests.h))
            }
            let paramError = relativeError(analyticParams, numericParams)
            #expect(paramError < GradientCheckTests.tolerance, "\(label): parameter gradient relative error \(paramError)")
        }
        for (i, v) in savedBuffers.enumerated() { c.store.buffers[i] = v }
        // A wrong gradient must be caught: perturb the analytic input gradient and re-check.
        var wrong = analyticInput
        for i in stride(from: 0, to: wrong.count, by: 3) { wrong[i] = -wrong[i] }
        if wrong != analyticInput && analyticInput.contains(where: { $0 != 0 }) {
            #expect(relativeError(wrong, numericInput) > GradientCheckTests.tolerance, "\(label): the check is not sensitive")
        }
    }

    @Test(arguments: [(1, 3, 0), (1, 3, 1), (2, 3, 1), (1, 5, 2), (2, 2, 0), (1, 1, 0)])
    func conv2D(stride: Int, kernel: Int, padding: Int) {
        let store = ParameterStore()
        let shape = Shape(channels: 2, height: 7, width: 6)
        let layer = Conv2D(name: "c", inputShape: shape, outputChannels: 3, kernelSize: kernel, stride: stride, padding: padding, store: store)
        store.seal(seed: 3)
        // Non-zero biases, so their gradient path is exercised.
        let w = store.mutableParameters()
        for i in 0..<store.parameterCount { w[i] += 0.01 * Float(i % 7) }
        check(Case(layer: layer, store: store, batch: 2, context: PassContext(mode: .training)),
              input: randomValues(2 * shape.count, seed: 5), label: "conv k\(kernel) s\(stride) p\(padding)")
    }

    /// The Winograd paths (3x3 and 5x5, stride 1, 16 channels in and out), forward and input gradient.
    @Test(arguments: [(3, 0), (3, 1), (5, 0), (5, 2)])
    func winogradConv2D(kernel: Int, padding: Int) {
        let store = ParameterStore()
        let shape = Shape(channels: 16, height: 7, width: 6)
        let layer = Conv2D(name: "c", inputShape: shape, outputChannels: 16, kernelSize: kernel, padding: padding, store: store)
        store.seal(seed: 4)
        if Kernels.isa.rawValue == "avx512" {
            #expect(Kernels.Packed.winogradApplies(layer.geometry, outputs: 16))
        }
        check(Case(layer: layer, store: store, batch: 3, context: PassContext(mode: .training)),
              input: randomValues(3 * shape.count, seed: 6), label: "winograd conv k\(kernel) p\(padding)")
    }

    @Test func dense() {
        let store = ParameterStore()
        let layer = Dense(name: "d", inputShape: Shape(channels: 2, height: 3, width: 2), outputs: 5, store: store)
        store.seal(seed: 4)
        check(Case(layer: layer, store: store, batch: 3, context: PassContext(mode: .training)),
              input: randomValues(3 * 12, seed: 6), label: "dense")
    }

    @Test(arguments: [(2, 2), (3, 2), (2, 1)])
    func maxPool(kernel: Int, stride: Int) {
        let shape = Shape(channels: 2, height: 6, width: 7)
        let layer = MaxPool2D(name: "p", inputShape: shape, kernelSize: kernel, stride: stride)
        check(Case(layer: layer, store: ParameterStore(), batch: 2, context: PassContext(mode: .training)),
              input: spreadValues(2 * shape.count, seed: 8), label: "maxpool k\(kernel) s\(stride)")
    }

    @Test func relu() {
        let shape = Shape(channels: 3, height: 2, width: 2)
        check(Case(layer: ReLU(name: "r", inputShape: shape), store: ParameterStore(), batch: 2, context: PassContext(mode: .training)),
              input: spreadValues(2 * shape.count, seed: 9), label: "relu")
    }

    @Test func globalAveragePool() {
        let shape = Shape(channels: 3, height: 3, width: 2)
        check(Case(layer: GlobalAveragePool(name: "g", inputShape: shape), store: ParameterStore(), batch: 2,
                   context: PassContext(mode: .training)), input: randomValues(2 * shape.count, seed: 10), label: "gap")
    }

    @Test func flatten() {
        let shape = Shape(channels: 2, height: 2, width: 2)
        check(Case(layer: Flatten(name: "f", inputShape: shape), store: ParameterStore(), batch: 2, context: PassContext(mode: .training)),
              input: randomValues(16, seed: 11), label: "flatten")
    }

    @Test func dropoutInTraining() {
        let shape = Shape.vector(20)
        let context = PassContext(mode: .training, seed: 5, step: 3, rank: 0)
        check(Case(layer: Dropout(name: "d", inputShape: shape, rate: 0.4, layerIndex: 2), store: ParameterStore(), batch: 3,
                   context: context), input: randomValues(60, seed: 12), label: "dropout")
    }

    @Test(arguments: [Shape(channels: 3, height: 3, width: 2), Shape.vector(4)])
    func batchNormInTraining(shape: Shape) {
        let store = ParameterStore()
        let layer = BatchNorm(name: "bn", inputShape: shape, store: store)
        store.seal(seed: 1)
        let w = store.mutableParameters()
        for i in 0..<store.parameterCount { w[i] += 0.1 * Float(i % 5) - 0.2 }
        check(Case(layer: layer, store: store, batch: 4, context: PassContext(mode: .training)),
              input: randomValues(4 * shape.count, seed: 13), label: "batchnorm \(shape)")
    }

    @Test func batchNormInEvaluation() {
        let store = ParameterStore()
        let shape = Shape(channels: 2, height: 2, width: 2)
        let layer = BatchNorm(name: "bn", inputShape: shape, store: store)
        store.seal(seed: 1)
        store.buffers[0] = 0.3; store.buffers[1] = -0.2; store.buffers[2] = 2; store.buffers[3] = 0.5
        check(Case(layer: layer, store: store, batch: 2, context: PassContext(mode: .evaluation)),
              input: randomValues(16, seed: 14), label: "batchnorm eval")
    }

    /// d f / d x_i by central differences of step 1e-2, for every i.
    func centralDifferences(of f: ([Float]) -> Double, at point: [Float]) -> [Double] {
        var x = point
        return (0..<x.count).map { i in
            let keep = x[i]
            x[i] = keep + 1e-2; let plus = f(x)
            x[i] = keep - 1e-2; let minus = f(x)
            x[i] = keep
            return (plus - minus) / 2e-2
        }
    }

    @Test func softmaxCrossEntropy() {
        let batch = 3, classes = 10
        let logits = randomValues(batch * classes, seed: 15, scale: 3)
        let labels: [UInt8] = [2, 9, 0]
        var gradient = [Float](repeating: 0, count: batch * classes)
        func meanLoss(_ l: [Float]) -> Double {
            l.withUnsafeBufferPointer { lp in labels.withUnsafeBufferPointer { yp in
                SoftmaxCrossEntropy.evaluate(logits: lp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes).lossSum / Double(batch)
            } }
        }
        logits.withUnsafeBufferPointer { lp in labels.withUnsafeBufferPointer { yp in gradient.withUnsafeMutableBufferPointer { gp in
            _ = SoftmaxCrossEntropy.evaluate(logits: lp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes,
                                             gradient: gp.baseAddress!, gradientScale: 1 / Float(batch))
        } } }
        let numeric = centralDifferences(of: meanLoss, at: logits)
        #expect(relativeError(gradient.map(Double.init), numeric) < 1e-3)
    }

    @Test func softmaxCrossEntropyIsStableForHugeLogits() {
        let logits: [Float] = [1000, -1000, 999] + [Float](repeating: 0, count: 7)
        let label: [UInt8] = [2]
        let r = SoftmaxCrossEntropy.evaluate(logits: logits, labels: label, batch: 1, classes: 10)
        #expect(r.lossSum.isFinite)
        #expect(abs(r.lossSum - (1 + log(1 + exp(-1.0)))) < 1e-3)   // logsumexp(1000, 999) - 999
        #expect(r.correct == 0)
    }

    /// With label smoothing ε the gradient is softmax - ((1 - ε) one-hot + ε/K): checked against
    /// finite differences of the reported loss, and the loss against the formula on one row.
    @Test func softmaxCrossEntropyWithLabelSmoothing() {
        let batch = 3, classes = 10, epsilon: Float = 0.1
        let logits = randomValues(batch * classes, seed: 16, scale: 3)
        let labels: [UInt8] = [7, 1, 4]
        var gradient = [Float](repeating: 0, count: batch * classes)
        func meanLoss(_ l: [Float]) -> Double {
            l.withUnsafeBufferPointer { lp in labels.withUnsafeBufferPointer { yp in
                SoftmaxCrossEntropy.evaluate(logits: lp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes,
                                             labelSmoothing: epsilon).lossSum / Double(batch)
            } }
        }
        logits.withUnsafeBufferPointer { lp in labels.withUnsafeBufferPointer { yp in gradient.withUnsafeMutableBufferPointer { gp in
            _ = SoftmaxCrossEntropy.evaluate(logits: lp.baseAddress!, labels: yp.baseAddress!, batch: batch, classes: classes,
                                             gradient: gp.baseAddress!, gradientScale: 1 / Float(batch), labelSmoothing: epsilon)
        } } }
        let numeric = centralDifferences(of: meanLoss, at: logits)
        #expect(relativeError(gradient.map(Double.init), numeric) < 1e-3)
        // Row 0 by hand: -sum_k target_k log p_k.
        let row = logits[0..<classes].map(Double.init)
        let logSumExp = log(row.map { exp($0) }.reduce(0, +))
        var expected = 0.0
        for k in 0..<classes {
            let target = Double(epsilon) / Double(classes) + (k == 7 ? 1 - Double(epsilon) : 0)
            expected -= target * (row[k] - logSumExp)
        }
        let one = logits.withUnsafeBufferPointer { lp in labels.withUnsafeBufferPointer { yp in
            SoftmaxCrossEntropy.evaluate(logits: lp.baseAddress!, labels: yp.baseAddress!, batch: 1, classes: classes,
                                         labelSmoothing: epsilon).lossSum
        } }
        #expect(abs(one - expected) < 1e-4)
        // The gradient of each row sums to zero, as with a one-hot target.
        #expect(abs(gradient[0..<classes].reduce(0, +)) < 1e-6)
    }
}
