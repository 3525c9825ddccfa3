#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The learning rate as a function of the global step: an optional linear warmup from
/// peak/warmup to the peak, then the schedule over the remaining steps.
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case constant
        /// Multiply by `factor` every `every` steps.
        case step(every: Int, factor: Float)
        /// Half a cosine from the peak to 0.
        case cosine
        /// Smith's one-cycle: cosine up from peak/25 to the peak over the first `rise` of the
        /// steps, then cosine down to peak/25/1e4.
        case oneCycle(rise: Float)
    }

    public let kind: Kind
    public let peak: Float
    public let warmupSteps: Int
    public let totalSteps: Int

    public init(kind: Kind, peak: Float, warmupSteps: Int = 0, totalSteps: Int) {
        self.kind = kind
        self.peak = peak
        self.warmupSteps = max(0, warmupSteps)
        self.totalSteps = max(1, totalSteps)
    }

    /// The rate for the update numbered `step` (0-based).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step + 1) / Float(warmupSteps) }
        let t = step - warmupSteps
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Float(t) / Float(span))
        switch kind {
        case .constant:
            return peak
        case .step(let every, let factor):
            return peak * powf(factor, Float(t / max(1, every)))
        case .cosine:
            return peak * 0.5 * (1 + cosf(Float.pi * progress))
        case .oneCycle(let rise):
            let start = peak / 25, end = start / 1e4
            if progress < rise {
                let p = progress / rise
                return start + (peak - start) * 0.5 * (1 - cosf(Float.pi * p))
            }
            let p = (progress - rise) / max(1e-6, 1 - rise)
            return end + (peak - end) * 0.5 * (1 + cosf(Float.pi * p))
        }
    }
}
