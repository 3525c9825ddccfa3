import CKernels
import Collective
import NeuralNet

/// How gradients cross between ranks each step. Both settings must be the same on every rank.
public struct ExchangeSettings: Sendable, Equatable {
    public enum Compression: String, Sendable, CaseIterable {
        /// Float32 gradients: exact sums.
        case none
        /// IEEE binary16 on the wire, half the bytes (see `GradientExchange`).
        case fp16
    }

    public var compression: Compression
    /// Gradients are sent in buckets of about this many bytes (of Float32 gradients), each started
    /// as soon as backward has finished its layers, overlapping the rest of backward. 0: one
    /// reduction of the whole arena after backward.
    public var bucketBytes: Int

    public init(compression: Compression = .none, bucketBytes: Int = 0) {
        self.compression = compression
        self.bucketBytes = bucketBytes
    }
}

/// The per-step allreduce of the gradient arena, in buckets that start while backward still runs
/// (as PyTorch DDP does), optionally compressed to binary16.
///
/// Buckets follow the arena backwards: the last layers finish backward first, so the first bucket
/// holds them. With fp16 each bucket is multiplied by a power of two before rounding, chosen from
/// the previous step's reduced gradients of that bucket (identical on every rank, so the ranks agree
/// without a message) to put its largest value near 2^12: 16x headroom under the binary16 maximum
/// and ~11 significant bits for values down to 2^-24 of the largest. A bucket with no scale yet (the
/// first step), or whose reduced values overflowed, is reduced in Float32 for that step instead.
///
/// The first bucket (the top of the arena) carries one more number: each rank's stop vote (1 when
/// it was asked to stop, e.g. by SIGTERM), in the float after the gradients (Float32) or an
/// unscaled binary16 after them (fp16). Its sum is the same on every rank, so all ranks stop after
/// the same step without a message of their own.
public final class GradientExchange {
    public let settings: ExchangeSettings
    let communicator: Communicator
    let store: ParameterStore
    /// (range in the arena, lowest layer index in it), in the order they are started.
    let buckets: [(range: Range<Int>, firstLayer: Int)]
    /// Per bucket: the binary16 scale for the next step (nil: send Float32).
    public private(set) var scales: [Float?]
    private var sentAsHalf: [Bool]
    private var started = 0
    private var failure: Error?
    private let halves: UnsafeMutablePointer<UInt16>   // (parameterCount + 1) the wire copy for fp16, then the stop vote
    /// Ranks that voted to stop in the step just reduced.
    public private(set) var stopVotes = 0
    /// Buckets reduced in Float32 because their binary16 sum overflowed (all steps so far).
    public private(set) var overflowFallbacks = 0

    static let targetMaximum: Float = 4096

    public init(network: Network, communicator: Communicator, settings: ExchangeSettings) {
        self.settings = settings
        self.communicator = communicator
        store = network.store
        var buckets = [(range: Range<Int>, firstLayer: Int)]()
        var upper: Int? = nil, lower = 0, first = 0
        let limit = settings.bucketBytes > 0 ? settings.bucketBytes / 4 : Int.max
        for index in stride(from: network.layers.count - 1, through: 0, by: -1) {
            let range = network.parameterRanges[index]
            guard !range.isEmpty else { continue }
            if upper == nil { upper = range.upperBound }
            lower = range.lowerBound
            first = index
            if let top = upper, top - lower >= limit {
                buckets.append((lower..<top, first))
                upper = nil
            }
        }
        if let top = upper { buckets.append((lower..<top, first)) }
        precondition(buckets.first?.range.upperBound == store.parameterCount, "the first bucket ends at the top of the arena")
        self.buckets = buckets
        scales = Array(repeating: nil, count: buckets.count)
        sentAsHalf = Array(repeating: false, count: buckets.count)
        halves = .allocate(capacity: store.parameterCount + 1)
    }

    deinit { halves.deallocate() }

    public var bucketCount: Int { buckets.count }
    /// Gradient bytes this rank puts into the reductions of a step (after the first, for fp16).
    public var bytesPerStep: Int { store.parameterCount * (settings.compression == .fp16 ? 2 : 4) }

    /// Call before each step's backward, with this rank's stop vote.
    public func beginStep(stop: Bool = false) {
        started = 0
        store.gradientTail.pointee = stop ? 1 : 0
        halves[store.parameterCount] = stop ? 0x3C00 : 0   // binary16 1.0: sums of votes stay exact to 2048 ranks
    }

    /// Backward has finished layer `index`: starts every bucket whose layers are all done. Called
    /// from inside backward, so a failure is kept and thrown by `finish`.
    public func layerDone(_ index: Int) {
        guard settings.bucketBytes > 0, failure == nil else { return }
        do {
            while started < buckets.count && buckets[started].firstLayer >= index {
                try start(started)
                started += 1
            }
            try communicator.progressReductions()
        } catch {
            failure = error
        }
    }

    /// Lets MPI move the started buckets along (called from inside long layers' backward, between
    /// samples); a failure is kept and thrown by `finish`.
    public func progress() {
        guard settings.bucketBytes > 0, failure == nil, started > 0 else { return }
        do {
            try communicator.progressReductions()
        } catch {
            failure = error
        }
    }

    /// Starts what is left, waits for every bucket and leaves the summed gradients in the arena.
    public func finish() throws {
        if let failure {
            self.failure = nil
            throw failure
        }
        while started < buckets.count {
            try start(started)
            started += 1
        }
        try communicator.waitReductions()
        if settings.compression == .fp16 && sentAsHalf[0] {
            ck_half_to_float(halves + store.parameterCount, store.gradientTail, 1, 1)
        }
        stopVotes = Int(store.gradientTail.pointee.rounded())
        guard settings.compression == .fp16 else { return }
        let gradients = store.gradients
        for (b, bucket) in buckets.enumerated() {
            let lo = bucket.range.lowerBound, count = bucket.range.count
            if sentAsHalf[b] {
                if ck_half_has_nonfinite(halves + lo, count) != 0 {
                    // Same reduced bits on every rank, so every rank takes this branch; the Float32
                    // gradients are still this rank's own.
                    overflowFallbacks += 1
                    try communicator.allreduceSum(UnsafeMutableBufferPointer(start: gradients + lo, count: count))
                } else if let scale = scales[b] {
                    ck_half_to_float(halves + lo, gradients + lo, count, 1 / scale)
                }
            }
            scales[b] = GradientExchange.scale(forMaximum: ck_max_abs(gradients + lo, count))
        }
    }

    /// The power of two that brings `maximum` to about `targetMaximum` (nil for 0 or non-finite).
    static func scale(forMaximum maximum: Float) -> Float? {
        guard maximum > 0, maximum.isFinite else { return nil }
        let exponent = (targetMaximum / maximum).exponent   // floor(log2)
        return Float(sign: .plus, exponent: min(100, max(-100, exponent)), significand: 1)
    }

    private func start(_ b: Int) throws {
        let range = buckets[b].range
        let gradients = store.gradients + range.lowerBound
        // Bucket 0 ends at the top of the arena; the vote after it goes along.
        let sent = range.count + (b == 0 ? 1 : 0)
        if settings.compression == .fp16, let scale = scales[b] {
            ck_float_to_half(gradients, halves + range.lowerBound, range.count, scale)
            sentAsHalf[b] = true
            try communicator.startAllreduceSum(UnsafeMutableRawBufferPointer(start: halves + range.lowerBound, count: sent * 2),
                                               element: .float16)
        } else {
            sentAsHalf[b] = false
            try communicator.startAllreduceSum(UnsafeMutableRawBufferPointer(start: gradients, count: sent * 4),
                                               element: .float32)
        }
    }

    /// The scales as one checkpoint tensor (0 for "none yet"), and back.
    public var scaleTensor: [Float] { scales.map { $0 ?? 0 } }
    public func restoreScales(_ values: [Float]) {
        guard values.count == scales.count else { return }
        scales = values.map { $0 > 0 ? $0 : nil }
    }
}
