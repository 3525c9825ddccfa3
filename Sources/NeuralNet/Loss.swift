#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax and cross-entropy fused, stable by log-sum-exp.
public enum SoftmaxCrossEntropy {
    public struct Result: Sendable {
        /// Sum over the batch of -log p(label), in Double.
        public var lossSum: Double
        /// Samples whose largest logit is their label.
        public var correct: Int
    }

    /// Loss and accuracy of logits (N, K) against labels (N). When `gradient` is given, writes
    /// d(mean loss)/d logits = (softmax - target) * gradientScale into it, (N, K).
    /// `gradientScale` is 1/N for a mean over this batch (the usual), or 1/(global batch).
    /// With `labelSmoothing` ε the target is (1 - ε) one-hot + ε / K (Szegedy et al. 2016) and the
    /// loss is the cross-entropy against it; with 0 (the default) the target is the one-hot label.
    @discardableResult
    public static func evaluate(logits: UnsafePointer<Float>, labels: UnsafePointer<UInt8>, batch: Int, classes: Int,
                                gradient: UnsafeMutablePointer<Float>? = nil, gradientScale: Float = 0,
                                labelSmoothing: Float = 0) -> Result {
        var lossSum = 0.0
        var correct = 0
        for n in 0..<batch {
            let row = logits + n * classes
            let label = Int(labels[n])
            var largest = row[0], best = 0
            for k in 1..<classes where row[k] > largest { largest = row[k]; best = k }
            if best == label { correct += 1 }
            var sumExp: Float = 0
            for k in 0..<classes { sumExp += expf(row[k] - largest) }
            let logSumExp = largest + logf(sumExp)
            if labelSmoothing == 0 {
                lossSum += Double(logSumExp - row[label])
            } else {
                var rowSum: Float = 0
                for k in 0..<classes { rowSum += row[k] }
                let uniform = labelSmoothing / Float(classes)
                lossSum += Double((1 - labelSmoothing) * (logSumExp - row[label]) + uniform * (Float(classes) * logSumExp - rowSum))
            }
            if let gradient {
                let g = gradient + n * classes
                let offTarget = labelSmoothing / Float(classes)
                for k in 0..<classes { g[k] = (expf(row[k] - logSumExp) - offTarget) * gradientScale }
                g[label] -= (1 - labelSmoothing) * gradientScale
            }
        }
        return Result(lossSum: lossSum, correct: correct)
    }

    /// Softmax probabilities of one row of logits.
    public static func probabilities(_ logits: UnsafePointer<Float>, classes: Int) -> [Float] {
        var largest = logits[0]
        for k in 1..<classes { largest = max(largest, logits[k]) }
        var p = (0..<classes).map { expf(logits[$0] - largest) }
        let sum = p.reduce(0, +)
        for k in 0..<classes { p[k] /= sum }
        return p
    }
}
