import CKernels
/// Per-sample shape of an activation, NCHW without the N. A flat vector is (features, 1, 1).
public struct Shape: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var channels: Int
    public var height: Int
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    public static func vector(_ features: Int) -> Shape { Shape(channels: features, height: 1, width: 1) }

    public var count: Int { channels * height * width }
    public var isVector: Bool { height == 1 && width == 1 }
    public var description: String { isVector ? "(\(channels))" : "(\(channels), \(height), \(width))" }
}

/// An owned, 64-byte aligned Float buffer that grows only when asked for more than it has,
/// so a steady-state step (same batch size) never allocates.
public final class FloatBuffer {
    public private(set) var pointer: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    public init(capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = FloatBuffer.allocate(self.capacity)
    }

    deinit { pointer.deallocate() }

    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * MemoryLayout<Float>.stride, alignment: 64)
        let typed = raw.bindMemory(to: Float.self, capacity: count)
        typed.initialize(repeating: 0, count: count)
        return typed
    }

    /// Ensures room for `count` floats; contents are not preserved when it grows.
    @discardableResult
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = FloatBuffer.allocate(count)
        }
        return pointer
    }

    public func zero(_ count: Int) { pointer.update(repeating: 0, count: count) }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: capacity) }
}

/// The two buffers every layer of a network writes its input gradient into, alternately. A
/// gradient is dead once the layer below has read it, so two buffers (each as large as the
/// largest activation) replace one per layer: the network's backward pass costs 2 activations of
/// memory instead of one per layer.
public final class GradientWorkspace {
    private let buffers = (FloatBuffer(), FloatBuffer())

    public init() {}

    /// Room for `count` floats in the buffer that does not hold `outputGradient` (which the caller is reading).
    public func inputGradient(_ count: Int, avoiding outputGradient: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let buffer = outputGradient == buffers.0.pointer ? buffers.1 : buffers.0
        return buffer.reserve(count)
    }
}

/// A layer's weights rearranged for the GEMM (packed panels, or transposed), kept while the
/// parameters are unchanged: repacked only when `ParameterStore.parameterVersion` has moved since.
/// Training writes the parameters every step, so it repacks every pass as before; evaluation and
/// single-image prediction pack once.
final class PackedWeights {
    private let buffer = FloatBuffer()
    private var packedVersion: UInt64?
    private var packedISA: UnsafePointer<CChar>?

    /// The packed weights, `floats` long, written by `pack` first when the parameters have changed.
    func current(_ store: ParameterStore, floats: Int, pack: (UnsafeMutablePointer<Float>) -> Void) -> UnsafePointer<Float> {
        // The panel layout is the kernel set's: packed under another (a test's withISA) is stale.
        // Compared by the table's name pointer (one per table), which costs no allocation.
        let isa = ck_isa()
        if packedVersion == store.parameterVersion && packedISA == isa && buffer.capacity >= floats {
            return UnsafePointer(buffer.pointer)
        }
        let out = buffer.reserve(floats)
        pack(out)
        packedVersion = store.parameterVersion
        packedISA = isa
        return UnsafePointer(out)
    }
}
