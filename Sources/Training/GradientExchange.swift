import Collective
import NeuralNet

/// How gradients cross between ranks each step. Both settings must be the same on every rank.
public struct ExchangeSettings: Sendable, Equatable {
    /// The `--gradient-compression` choices, named as configurations and checkpoints name them.
    public enum Compression: String, Sendable, CaseIterable {
        /// Float32 gradients: exact sums.
        case none
        /// IEEE binary16 on the wire, half the bytes (`Binary16Compression`).
        case fp16

        /// The compressor behind each choice: where a new compressor is named.
        func compressor(parameterCount: Int, bucketCount: Int) -> GradientCompressor {
            switch self {
            case .none: NoCompression()
            case .fp16: Binary16Compression(parameterCount: parameterCount, bucketCount: bucketCount)
            }
        }
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

/// One bucket of the gradient arena: a contiguous range, reduced as one message.
public struct GradientBucket: Sendable {
    /// Its place in the order of reductions; 0 is the top of the arena, started first.
    public let index: Int
    public let range: Range<Int>
    /// The lowest layer with parameters in it: backward finishing this layer starts the bucket.
    public let firstLayer: Int
    /// Bucket 0 also carries the stop vote: the one Float32 after the arena (`gradientTail`), 0 or 1
    /// per rank, which must cross unscaled and come back as the sum of the votes.
    public var carriesVote: Bool { index == 0 }

    /// The bucket's Float32 gradients (and the vote) where they are: a reduction without compression.
    public func uncompressed(in arena: UnsafeMutablePointer<Float>) -> GradientWire {
        let count = range.count + (carriesVote ? 1 : 0)
        return GradientWire(bytes: UnsafeMutableRawBufferPointer(start: arena + range.lowerBound, count: count * 4),
                            element: .float32)
    }
}

/// A bucket as it crosses: bytes summed in place across ranks, as elements of one type.
public struct GradientWire {
    public let bytes: UnsafeMutableRawBufferPointer
    public let element: ReductionElement

    public init(bytes: UnsafeMutableRawBufferPointer, element: ReductionElement) {
        self.bytes = bytes
        self.element = element
    }
}

/// Puts buckets of Float32 gradients on the wire and takes their sums back. The exchange owns the
/// buckets, the communicator and the stop vote; a compressor owns its wire copy and its state (such
/// as scales). That state may depend only on summed values, so it is the same on every rank and the
/// ranks agree on every bucket's format without a message.
public protocol GradientCompressor: AnyObject {
    /// Bytes a gradient takes on the wire once compressing (4 for Float32).
    var bytesPerGradient: Int { get }
    /// This rank's gradients of `bucket` in `arena`, and the vote after them, in wire form. The
    /// exchange leaves the bucket's part of the arena alone until `decode` (the wire may be that part).
    func encode(_ bucket: GradientBucket, from arena: UnsafeMutablePointer<Float>) -> GradientWire
    /// Once every reduction of the step is complete: the summed wire of `bucket` back into `arena` as
    /// Float32, the vote included. False when the sum cannot be used (binary16 overflow); the exchange
    /// then sums the bucket's Float32 gradients, which a wire copy has left as this rank's own.
    func decode(_ bucket: GradientBucket, into arena: UnsafeMutablePointer<Float>) -> Bool
    /// The bucket's final sums, however they were reached (for the next step's scale, say).
    func summed(_ bucket: GradientBucket, _ sums: UnsafeBufferPointer<Float>)
    /// What a resumed run needs to compress its first step as the uninterrupted run would, saved in
    /// checkpoints as the tensor `stateTensorName` (nil: nothing to save); `restore` ignores values of
    /// another shape. A stateless compressor keeps the defaults below.
    var stateTensorName: String? { get }
    var state: [Float] { get }
    func restore(_ state: [Float])
}

extension GradientCompressor {
    /// Nothing to learn from the sums, and no state.
    public func summed(_ bucket: GradientBucket, _ sums: UnsafeBufferPointer<Float>) {}
    public var stateTensorName: String? { nil }
    public var state: [Float] { [] }
    public func restore(_ state: [Float]) {}
}

/// Float32 gradients, summed where they lie in the arena: exact sums, 4 bytes a gradient.
final class NoCompression: GradientCompressor {
    var bytesPerGradient: Int { 4 }
    func encode(_ bucket: GradientBucket, from arena: UnsafeMutablePointer<Float>) -> GradientWire { bucket.uncompressed(in: arena) }
    func decode(_ bucket: GradientBucket, into arena: UnsafeMutablePointer<Float>) -> Bool { true }
}

/// The per-step allreduce of the gradient arena, in buckets that start while backward still runs
/// (as PyTorch DDP does), each put on the wire by the exchange's compressor.
///
/// Buckets follow the arena backwards: the last layers finish backward first, so the first bucket
/// holds them. The first bucket (the top of the arena) carries one more number: each rank's stop
/// vote (1 when it was asked to stop, e.g. by SIGTERM), in the float after the gradients. Its sum
/// is the same on every rank, so all ranks stop after the same step without a message of their own.
public final class GradientExchange {
    public let settings: ExchangeSettings
    let communicator: Communicator
    let store: ParameterStore
    /// In the order they are started.
    let buckets: [GradientBucket]
    let compressor: GradientCompressor
    private var started = 0
    private var failure: Error?
    /// Ranks that voted to stop in the step just reduced.
    public private(set) var stopVotes = 0
    /// Buckets reduced again in Float32 because their compressed sum overflowed (all steps so far).
    public private(set) var overflowFallbacks = 0

    /// `compressor`: one of the caller's own (tests) instead of the one `settings.compression` names.
    public init(network: Network, communicator: Communicator, settings: ExchangeSettings, compressor: GradientCompressor? = nil) {
        self.settings = settings
        self.communicator = communicator
        store = network.store
        buckets = GradientExchange.buckets(of: network, bytes: settings.bucketBytes)
        self.compressor = compressor
            ?? settings.compression.compressor(parameterCount: store.parameterCount, bucketCount: buckets.count)
    }

    /// Consecutive layers from the top of the arena down, a bucket closed once it holds `bytes` of
    /// Float32 gradients (0: one bucket).
    static func buckets(of network: Network, bytes: Int) -> [GradientBucket] {
        var buckets = [GradientBucket]()
        var upper: Int? = nil, lower = 0, first = 0
        let limit = bytes > 0 ? bytes / 4 : Int.max
        for index in stride(from: network.layers.count - 1, through: 0, by: -1) {
            let range = network.parameterRanges[index]
            guard !range.isEmpty else { continue }
            if upper == nil { upper = range.upperBound }
            lower = range.lowerBound
            first = index
            if let top = upper, top - lower >= limit {
                buckets.append(GradientBucket(index: buckets.count, range: lower..<top, firstLayer: first))
                upper = nil
            }
        }
        if let top = upper { buckets.append(GradientBucket(index: buckets.count, range: lower..<top, firstLayer: first)) }
        precondition(buckets.first?.range.upperBound == network.store.parameterCount, "the first bucket ends at the top of the arena")
        return buckets
    }

    public var bucketCount: Int { buckets.count }
    /// Gradient bytes this rank puts into the reductions of a step (once compressing: after the first step, for fp16).
    public var bytesPerStep: Int { store.parameterCount * compressor.bytesPerGradient }

    /// Call before each step's backward, with this rank's stop vote.
    public func beginStep(stop: Bool = false) {
        started = 0
        store.gradientTail.pointee = stop ? 1 : 0
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
        let arena = store.gradients
        for bucket in buckets {
            let gradients = UnsafeMutableBufferPointer(start: arena + bucket.range.lowerBound, count: bucket.range.count)
            if !compressor.decode(bucket, into: arena) {
                // Same reduced bits on every rank, so every rank takes this branch.
                overflowFallbacks += 1
                try communicator.allreduceSum(gradients)
            }
            compressor.summed(bucket, UnsafeBufferPointer(gradients))
        }
        stopVotes = Int(store.gradientTail.pointee.rounded())
    }

    private func start(_ b: Int) throws {
        let wire = compressor.encode(buckets[b], from: store.gradients)
        try communicator.startAllreduceSum(wire.bytes, element: wire.element)
    }

    /// The compressor's state (binary16: each bucket's scale, 0 for "none yet") as one checkpoint
    /// tensor and its name, nil for a stateless compressor; and back.
    public var compressorState: (name: String, values: [Float])? {
        compressor.stateTensorName.map { ($0, compressor.state) }
    }
    public func restoreCompressorState(from tensors: [String: StoredTensor]) {
        if let name = compressor.stateTensorName, let stored = tensors[name] { compressor.restore(stored.values) }
    }
}
