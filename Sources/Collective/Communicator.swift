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
}

extension Communicator {
    public var isRoot: Bool { rank == 0 }

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
