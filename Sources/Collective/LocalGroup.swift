import Foundation

/// Several ranks as threads of one process, for unit tests of multi-rank logic without mpirun.
/// Reductions sum in rank order into one result that every rank copies, so all ranks get
/// identical bits, as with MPI.
public final class LocalGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var slots: [UnsafeMutableRawPointer?]
    private var byteSlots: [[UInt8]]
    private var aborted: String?

    public init(size: Int) {
        self.size = size
        slots = Array(repeating: nil, count: size)
        byteSlots = Array(repeating: [], count: size)
    }

    /// The communicator of one rank; give each to its own thread.
    public func communicator(rank: Int) -> LocalCommunicator { LocalCommunicator(group: self, rank: rank) }

    /// Runs `body` once per rank on its own thread and returns each rank's result, in rank order.
    public func run<T: Sendable>(_ body: @escaping @Sendable (LocalCommunicator) throws -> T) throws -> [T] {
        let results = ResultBox<T>(count: size)
        let threads = (0..<size).map { rank in
            Thread { [self] in
                do { results.set(rank, .success(try body(communicator(rank: rank)))) }
                catch { results.set(rank, .failure(error)); fail("rank \(rank): \(error)") }
            }
        }
        for t in threads { t.stackSize = 16 << 20; t.start() }
        results.wait()
        return try results.values()
    }

    func fail(_ message: String) {
        condition.lock()
        if aborted == nil { aborted = message }
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until every rank has arrived; `deposit` runs under the lock on arrival and
    /// `collect` on release, in each rank's own thread.
    func synchronize(deposit: () -> Void, collect: () -> Void = {}) throws {
        condition.lock()
        defer { condition.unlock() }
        if let aborted { throw CollectiveError("group aborted: \(aborted)") }
        deposit()
        let myGeneration = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == myGeneration && aborted == nil { condition.wait() }
            if let aborted { throw CollectiveError("group aborted: \(aborted)") }
        }
        collect()
    }

    func setSlot(_ rank: Int, _ pointer: UnsafeMutableRawPointer?) { slots[rank] = pointer }
    func slot(_ rank: Int) -> UnsafeMutableRawPointer? { slots[rank] }
    func setBytes(_ rank: Int, _ bytes: [UInt8]) { byteSlots[rank] = bytes }
    func allBytes() -> [[UInt8]] { byteSlots }
}

final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSCondition()
    private var results: [Result<T, Error>?]
    private var done = 0
    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<T, Error>) { lock.lock(); results[i] = r; done += 1; lock.broadcast(); lock.unlock() }
    func wait() { lock.lock(); while done < results.count { lock.wait() }; lock.unlock() }
    func values() throws -> [T] { try results.map { try $0!.get() } }
}

public final class LocalCommunicator: Communicator {
    let group: LocalGroup
    public let rank: Int
    init(group: LocalGroup, rank: Int) { self.group = group; self.rank = rank }
    public var size: Int { group.size }
    public var rankDescription: String { "rank \(rank) of \(size) (in-process)" }

    private func reduce<T: FloatingPoint>(_ buffer: UnsafeMutableBufferPointer<T>, _ combine: (T, T) -> T) throws {
        let scratch = UnsafeMutableBufferPointer<T>.allocate(capacity: buffer.count)
        defer { scratch.deallocate() }
        // Phase 1: publish. Phase 2: everyone combines all in rank order. Phase 3: done reading.
        try group.synchronize(deposit: { group.setSlot(rank, UnsafeMutableRawPointer(buffer.baseAddress)) })
        for i in 0..<buffer.count {
            var value = group.slot(0)!.assumingMemoryBound(to: T.self)[i]
            for r in 1..<size { value = combine(value, group.slot(r)!.assumingMemoryBound(to: T.self)[i]) }
            scratch[i] = value
        }
        try group.synchronize(deposit: {})
        for i in 0..<buffer.count { buffer[i] = scratch[i] }
        try group.synchronize(deposit: {})
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { try reduce(buffer, +) }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws { try reduce(buffer, +) }
    public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws { try reduce(buffer) { max($0, $1) } }

    /// Blocking: every rank adds the other ranks' elements into a copy of rank 0's with
    /// `element.sum`, in rank order, so every rank gets the same bits.
    public func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: buffer.count, alignment: 16)
        defer { scratch.deallocate() }
        try group.synchronize(deposit: { group.setSlot(rank, base) })
        scratch.copyMemory(from: group.slot(0)!, byteCount: buffer.count)
        for r in 1..<size { element.sum(group.slot(r)!, scratch, buffer.count / element.byteCount) }
        try group.synchronize(deposit: {})
        base.copyMemory(from: scratch, byteCount: buffer.count)
        try group.synchronize(deposit: {})
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try group.synchronize(deposit: { group.setSlot(rank, buffer.baseAddress) })
        if rank != root, buffer.count > 0 { buffer.baseAddress!.copyMemory(from: group.slot(root)!, byteCount: buffer.count) }
        try group.synchronize(deposit: {})
    }

    public func barrier() throws { try group.synchronize(deposit: {}) }

    public func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var result: [[UInt8]] = []
        try group.synchronize(deposit: { group.setBytes(rank, bytes) }, collect: { result = group.allBytes() })
        try group.synchronize(deposit: {})
        return result
    }

    public func abort(_ message: String, code: Int32) -> Never {
        group.fail(message)
        // A thread cannot end the process's other ranks politely; end this thread's work.
        while true { Thread.sleep(forTimeInterval: 3600) }
    }
}
