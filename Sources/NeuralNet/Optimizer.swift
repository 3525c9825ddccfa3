#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Which update rule, with its constants.
public enum OptimizerKind: Equatable, Sendable, CustomStringConvertible {
    /// SGD with momentum (heavy ball, or Nesterov); weight decay as L2 added to the gradient.
    case sgd(momentum: Float, nesterov: Bool)
    /// Adam (Kingma & Ba); weight decay as L2 added to the gradient.
    case adam(beta1: Float, beta2: Float, epsilon: Float)
    /// AdamW (Loshchilov & Hutter): weight decay decoupled, applied to the weights directly.
    case adamW(beta1: Float, beta2: Float, epsilon: Float)

    public var description: String {
        switch self {
        case .sgd(let m, let n): return n ? "nesterov(momentum \(m))" : "sgd(momentum \(m))"
        case .adam: return "adam"
        case .adamW: return "adamw"
        }
    }

    /// "sgd", "nesterov", "adam", "adamw".
    public static func named(_ name: String, momentum: Float = 0.9) -> OptimizerKind? {
        switch name {
        case "sgd": return .sgd(momentum: momentum, nesterov: false)
        case "nesterov": return .sgd(momentum: momentum, nesterov: true)
        case "adam": return .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        case "adamw": return .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        default: return nil
        }
    }
}

/// Updates the parameter arena from the gradient arena, in one pass over each tensor.
/// State (momentum, or Adam's two moments) lives in arenas of the same layout, so it
/// checkpoints as one or two tensors.
public final class Optimizer {
    public let kind: OptimizerKind
    public let weightDecay: Float
    let store: ParameterStore
    /// (parameterCount) momentum, or Adam's first moment.
    public let firstMoment: FloatBuffer
    /// (parameterCount) Adam's second moment; unused by SGD.
    public let secondMoment: FloatBuffer
    /// Updates taken so far (Adam's bias correction reads it).
    public var stepCount: Int = 0
    private let decaySpans: [(range: Range<Int>, decays: Bool)]

    public init(kind: OptimizerKind, store: ParameterStore, weightDecay: Float = 0) {
        self.kind = kind
        self.weightDecay = weightDecay
        self.store = store
        firstMoment = FloatBuffer(capacity: store.parameterCount)
        if case .sgd = kind { secondMoment = FloatBuffer(capacity: 1) } else { secondMoment = FloatBuffer(capacity: store.parameterCount) }
        // Tensors cut into pieces of at most 16,384 values: independent tasks for the kernel threads.
        var spans: [(range: Range<Int>, decays: Bool)] = []
        for entry in store.parameterEntries {
            let end = entry.slice.offset + entry.slice.count
            for start in stride(from: entry.slice.offset, to: end, by: 16_384) {
                spans.append((start..<min(end, start + 16_384), entry.decays))
            }
        }
        decaySpans = spans
    }

    /// Names of the state tensors this optimizer keeps, for checkpoints.
    public var stateTensors: [(name: String, buffer: FloatBuffer)] {
        switch kind {
        case .sgd: return [("optimizer.momentum", firstMoment)]
        case .adam, .adamW: return [("optimizer.adam_m", firstMoment), ("optimizer.adam_v", secondMoment)]
        }
    }

    public func step(learningRate lr: Float) {
        stepCount += 1
        let w = store.mutableParameters(), g = store.gradients
        let m = firstMoment.pointer, v = secondMoment.pointer
        let kind = kind, weightDecay = weightDecay, spans = decaySpans, t = Float(stepCount)
        Kernels.parallelFor(spans.count) { index in
            let span = spans[index]
            let wd = span.decays ? weightDecay : 0
            switch kind {
            case .sgd(let mu, let nesterov):
                let at = span.range.lowerBound
                ck_sgd(w + at, g + at, m + at, span.range.count, mu, nesterov ? 1 : 0, lr, wd)
            case .adam(let b1, let b2, let eps), .adamW(let b1, let b2, let eps):
                let decoupled: Bool
                if case .adamW = kind { decoupled = true } else { decoupled = false }
                let c1 = 1 - powf(b1, t), c2 = 1 - powf(b2, t)
                let stepSize = lr / c1
                let c2Root = c2.squareRoot()
                let at = span.range.lowerBound
                ck_adam(w + at, g + at, m + at, v + at, span.range.count, b1, b2, eps, lr, wd, decoupled ? 1 : 0,
                        stepSize, c2Root)
            }
        }
    }
}

import CKernels
