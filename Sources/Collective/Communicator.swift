/// A failure of a collective operation, with the call and the library's own words.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The operations data-parallel training needs from a group of ranks. Every rank calls the
/// same operations in the same order (MPI's rule); buffers are reduced in place.
public protocol Communicator: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// A name for messages: "rank 2 of 4 on host pi3".
    var rankDescription: String { get }

    /// Element-wise sum across ranks, result on every rank.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Element-wise maximum across ranks.
    func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Root's bytes to every rank (same count everywhere).
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    func barrier() throws
    /// Every rank's bytes, in rank order (lengths may differ; meant for small values).
    func allgather(_ bytes: [UInt8]) throws -> [[UInt8]]
    /// Ends every rank of the job with this message; never returns.
    func abort(_ message: String, code: Int32) -> Never

    /// Starts an in-place element-wise sum across ranks of the `element`s in `buffer` and returns;
    /// the buffer must not be touched until `waitReductions`. Every rank starts the same reductions
    /// in the same order. (Communicators without non-blocking collectives finish the sum before returning.)
    func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws
    /// Lets started reductions advance (MPI moves them only inside MPI calls).
    func progressReductions() throws
    /// Returns when every started reduction is complete.
    func waitReductions() throws

    /// The ranks cut into `groups` blocks of consecutive ranks (`size` must be a multiple): this
    /// rank's block as a communicator of its own, for work that groups do side by side (ensemble
    /// members, cross-validation folds). Collective: every rank calls it with the same `groups`.
    func split(groups: Int) throws -> Communicator
    /// A barrier that waits as long as the slowest rank's work takes (groups finishing their
    /// members or folds at different times), without spinning.
    func waitForAll() throws
}

/// The elements of a started reduction: their width and their sum. A transport moves and adds
/// them without knowing what they are (a gradient compressor's wire format, for instance).
public struct ReductionElement: Sendable {
    /// `sums[i] = input[i] + sums[i]` for `i < count` (MPI's order of arguments). Must be
    /// commutative: a transport may add the ranks' values in any order.
    public typealias Sum = @convention(c) (_ input: UnsafeRawPointer, _ sums: UnsafeMutableRawPointer, _ count: Int) -> Void

    /// For messages: "float32", "binary16".
    public let name: String
    /// Bytes per element.
    public let byteCount: Int
    public let sum: Sum
    /// Only `float32` is true: MPI sums it with its own MPI_SUM of MPI_FLOAT.
    let isFloat32: Bool

    public init(name: String, byteCount: Int, sum: Sum) {
        self.init(name: name, byteCount: byteCount, sum: sum, isFloat32: false)
    }

    private init(name: String, byteCount: Int, sum: Sum, isFloat32: Bool) {
        self.name = name
        self.byteCount = byteCount
        self.sum = sum
        self.isFloat32 = isFloat32
    }

    /// Float32 values, summed exactly as `allreduceSum` sums them.
    public static let float32 = ReductionElement(name: "float32", byteCount: 4, sum: { input, sums, count in
        let a = input.assumingMemoryBound(to: Float.self), b = sums.assumingMemoryBound(to: Float.self)
        for i in 0..<count { b[i] = a[i] + b[i] }
    }, isFloat32: true)
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    public func waitForAll() throws { try barrier() }

    /// Communicators that cannot be split are one group of themselves.
    public func split(groups: Int) throws -> Communicator {
        guard groups == 1 else { throw CollectiveError("\(rankDescription): this communicator cannot be split into \(groups) groups") }
        return self
    }

    public func progressReductions() throws {}
    public func waitReductions() throws {}

    public func allreduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    public func allreduceMax(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceMax($0) }
    }

    public func broadcast(_ values: inout [Float], root: Int) throws {
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    public func allgather(_ text: String) throws -> [String] {
        try allgather(Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}
