#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A world of one: every collective is the identity. The ordinary laptop case.
public final class SingleProcessCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public var rankDescription: String { "rank 0 of 1" }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws {}
    public func barrier() throws {}
    public func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
    public func abort(_ message: String, code: Int32) -> Never {
        let line = message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        exit(code)
    }
}
