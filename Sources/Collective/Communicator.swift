import CKernels

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

    /// Starts an in-place element-wise sum across ranks and returns; the buffer must not be
    /// touched until `waitReductions`. Every rank starts the same reductions in the same order.
    /// (Communicators without non-blocking collectives finish the sum before returning.)
    func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws
    /// Lets started reductions advance (MPI moves them only inside MPI calls).
    func progressReductions() throws
    /// Returns when every started reduction is complete.
    func waitReductions() throws
}

/// What a started reduction sums.
public enum ReductionElement: Sendable {
    case float32
    /// IEEE binary16 values, summed in Float32 and rounded back after each addition.
    case float16
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

    /// The blocking fallback: sums now (float16 through a Float32 copy, rounded once).
    public func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws {
        guard size > 1 else { return }
        switch element {
        case .float32:
            try allreduceSum(buffer.bindMemory(to: Float.self))
        case .float16:
            let halves = buffer.bindMemory(to: UInt16.self)
            var wide = [Float](repeating: 0, count: halves.count)
            ck_half_to_float(halves.baseAddress, &wide, halves.count, 1)
            try wide.withUnsafeMutableBufferPointer { try allreduceSum($0) }
            ck_float_to_half(wide, halves.baseAddress, halves.count, 1)
        }
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
