import CounterRNG

/// A contiguous run of one arena that belongs to one tensor of one layer.
public struct ArenaSlice: Sendable, Equatable {
    public let offset: Int
    public let count: Int
}

/// How a parameter tensor starts.
public enum ParameterInit: Sendable, Equatable {
    case zeros
    case ones
    /// He/Kaiming normal for ReLU networks: N(0, 2 / fanIn).
    case heNormal(fanIn: Int)
}

/// Every trainable number of a model in ONE Float arena, their gradients in a second of the
/// same layout, and non-trained state (BatchNorm running statistics) in a third
/// (DESIGN.md decision 1). Layers hold `ArenaSlice`s into them. Zeroing the gradients,
/// the allreduce, the optimizer and a checkpoint each touch one buffer.
public final class ParameterStore {
    /// A named tensor in an arena, in registration order (the checkpoint's tensor list).
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let slice: ArenaSlice
        public let initial: ParameterInit
        /// Weight decay applies to weights, not to biases or BatchNorm scale/shift.
        public let decays: Bool
    }

    public private(set) var parameterEntries: [Entry] = []
    public private(set) var bufferEntries: [Entry] = []
    public private(set) var parameterCount = 0
    public private(set) var bufferCount = 0
    private var parameterArena = FloatBuffer()
    private var gradientArena = FloatBuffer()
    private var bufferArena = FloatBuffer()
    private var sealed = false

    public init() {}

    /// (parameterCount) all trainable parameters, to read. Writing goes through `mutableParameters()`.
    public var parameters: UnsafePointer<Float> { UnsafePointer(parameterArena.pointer) }
    /// Counts the calls of `mutableParameters()`: equal values mean the parameters have not been
    /// written in between, so a layer may reuse what it derived from them (packed weights).
    public private(set) var parameterVersion: UInt64 = 0

    /// (parameterCount) the parameters, to write: the only way to change them. Each call counts as a
    /// change (`parameterVersion`); take a fresh pointer for each change rather than keeping one
    /// across a forward pass.
    public func mutableParameters() -> UnsafeMutablePointer<Float> {
        parameterVersion &+= 1
        return parameterArena.pointer
    }
    /// (parameterCount) gradients, same layout as `parameters`.
    public var gradients: UnsafeMutablePointer<Float> { gradientArena.pointer }
    /// (1) the float after the last gradient: room for a number that travels in the same
    /// allreduce as the gradients (the gradient exchange's stop vote), so it needs no message of its own.
    public var gradientTail: UnsafeMutablePointer<Float> { gradientArena.pointer + parameterCount }
    /// (bufferCount) non-trained state.
    public var buffers: UnsafeMutablePointer<Float> { bufferArena.pointer }

    public var parameterBuffer: UnsafeBufferPointer<Float> { .init(start: parameters, count: parameterCount) }
    /// The parameters as a buffer to write (a change, as `mutableParameters()`).
    public func mutableParameterBuffer() -> UnsafeMutableBufferPointer<Float> {
        .init(start: mutableParameters(), count: parameterCount)
    }
    public var gradientBuffer: UnsafeMutableBufferPointer<Float> { .init(start: gradients, count: parameterCount) }
    public var bufferBuffer: UnsafeMutableBufferPointer<Float> { .init(start: buffers, count: bufferCount) }

    /// Claims a parameter tensor; call while building, before `seal`.
    public func addParameter(_ name: String, shape: [Int], initial: ParameterInit, decays: Bool) -> ArenaSlice {
        precondition(!sealed, "parameters are registered before the store is sealed")
        let count = shape.reduce(1, *)
        let slice = ArenaSlice(offset: parameterCount, count: count)
        parameterEntries.append(Entry(name: name, shape: shape, slice: slice, initial: initial, decays: decays))
        parameterCount += count
        return slice
    }

    /// Claims a non-trained buffer (running statistics).
    public func addBuffer(_ name: String, shape: [Int], initial: ParameterInit) -> ArenaSlice {
        precondition(!sealed, "buffers are registered before the store is sealed")
        let count = shape.reduce(1, *)
        let slice = ArenaSlice(offset: bufferCount, count: count)
        bufferEntries.append(Entry(name: name, shape: shape, slice: slice, initial: initial, decays: false))
        bufferCount += count
        return slice
    }

    /// Allocates the arenas and initialises every tensor from the seed. Each tensor draws from
    /// its own keyed stream (seed, tensor index), so adding a layer does not change the others.
    public func seal(seed: UInt64) {
        precondition(!sealed)
        sealed = true
        parameterArena.reserve(parameterCount)
        gradientArena.reserve(parameterCount + 1)
        bufferArena.reserve(bufferCount)
        gradientArena.zero(parameterCount + 1)
        for (index, entry) in parameterEntries.enumerated() {
            fill(mutableParameters() + entry.slice.offset, entry.slice.count, entry.initial, seed: seed, stream: UInt64(index))
        }
        for (index, entry) in bufferEntries.enumerated() {
            fill(buffers + entry.slice.offset, entry.slice.count, entry.initial, seed: seed, stream: UInt64(1_000_000 + index))
        }
    }

    private func fill(_ p: UnsafeMutablePointer<Float>, _ count: Int, _ initial: ParameterInit, seed: UInt64, stream: UInt64) {
        switch initial {
        case .zeros: p.update(repeating: 0, count: count)
        case .ones: p.update(repeating: 1, count: count)
        case .heNormal(let fanIn):
            var random = KeyedRandom(seed: seed, purpose: .parameterInit, stream)
            let scale = (2.0 / Float(fanIn)).squareRoot()
            for i in 0..<count { p[i] = random.nextNormal() * scale }
        }
    }

    public func zeroGradients() { gradientArena.zero(parameterCount) }
}
