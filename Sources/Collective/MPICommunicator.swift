import CMPI
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// MPI_COMM_WORLD through CMPI. Every return code is checked; failures become `CollectiveError`
/// naming the call and quoting MPI's message (errors return instead of aborting).
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int
    public let hostName: String
    private let comm: MPI_Comm
    private let timeout: Double?
    private nonisolated(unsafe) static var initialized = false
    private let watchdog: CollectiveWatchdog?
    /// Reductions started and not yet known to be complete.
    private var pending: [MPI_Request?] = []

    /// True when this process was started by mpirun/mpiexec or a PMI launcher (Slurm's srun).
    public static var launchedByMPI: Bool {
        let names: [String] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"]
        return names.contains { name in getenv(name) != nil }
    }

    /// Initialises MPI once per process. With `timeout`, a collective that makes no progress for
    /// that many seconds (a rank or its host is gone, or its link is down) ends this process with a
    /// message; mpirun then stops the whole job instead of leaving it hanging.
    public convenience init(timeout: Double? = nil) throws {
        if !MPICommunicator.initialized {
            var provided: Int32 = 0
            try MPICommunicator.check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
            MPICommunicator.initialized = true
        }
        try self.init(comm: cmpi_comm_world(), timeout: timeout)
    }

    private init(comm: MPI_Comm, timeout: Double?) throws {
        self.comm = comm
        self.timeout = timeout
        try MPICommunicator.check(MPI_Comm_set_errhandler(comm, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0, s: Int32 = 0
        try MPICommunicator.check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank")
        try MPICommunicator.check(MPI_Comm_size(comm, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        hostName = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        watchdog = timeout.map { CollectiveWatchdog(timeout: $0, rank: Int(r), size: Int(s)) }
    }

    /// Runs one blocking collective under the watchdog.
    @inline(__always)
    private func guarded<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        watchdog?.enter(name)
        defer { watchdog?.leave() }
        return try body()
    }

    public var rankDescription: String { "rank \(rank) of \(size) on \(hostName)" }

    public func split(groups: Int) throws -> Communicator {
        guard groups >= 1, size % groups == 0 else {
            throw CollectiveError("\(size) ranks cannot be cut into \(groups) equal groups")
        }
        if groups == 1 { return self }
        var group: MPI_Comm? = nil
        try MPICommunicator.check(MPI_Comm_split(comm, Int32(rank / (size / groups)), Int32(rank), &group), "MPI_Comm_split")
        guard let group else { throw CollectiveError("MPI_Comm_split returned no communicator") }
        return try MPICommunicator(comm: group, timeout: timeout)
    }

    /// Ends MPI cleanly; call once when the work is done.
    public func finalize() {
        if MPICommunicator.initialized {
            MPI_Finalize()
            MPICommunicator.initialized = false
        }
    }

    static func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        guard code != cmpi_success() else { return }
        var text = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &text, &length)
        let message = String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw CollectiveError("\(call()) failed: \(message) (MPI error \(code))")
    }

    /// MPI counts are Int32; larger buffers go in pieces.
    private func inPieces(_ count: Int, _ body: (Int, Int32) throws -> Void) throws {
        let piece = Int(Int32.max / 2)
        var start = 0
        while start < count {
            let n = min(piece, count - start)
            try body(start, Int32(n))
            start += n
        }
    }

    /// One in-place MPI_Allreduce of `count` elements, in pieces of at most Int32.max / 2, under the watchdog.
    private func allreduce(_ base: UnsafeMutableRawPointer, count: Int, stride: Int, type: MPI_Datatype, op: MPI_Op,
                           call: String, watched: String) throws {
        try guarded(watched) {
            try inPieces(count) { start, n in
                try MPICommunicator.check(MPI_Allreduce(cmpi_in_place(), base + start * stride, n, type, op, comm), call)
            }
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress else { return }
        try allreduce(base, count: buffer.count, stride: 4, type: cmpi_float(), op: cmpi_sum(),
                      call: "MPI_Allreduce(float, sum)", watched: "the gradient allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = buffer.baseAddress else { return }
        try allreduce(base, count: buffer.count, stride: 8, type: cmpi_double(), op: cmpi_sum(),
                      call: "MPI_Allreduce(double, sum)", watched: "an allreduce of metrics")
    }

    public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        guard let base = buffer.baseAddress else { return }
        try allreduce(base, count: buffer.count, stride: 8, type: cmpi_double(), op: cmpi_max(),
                      call: "MPI_Allreduce(double, max)", watched: "an allreduce of timings")
    }

    public func startAllreduceSum(_ buffer: UnsafeMutableRawBufferPointer, element: ReductionElement) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        let count = buffer.count / element.byteCount
        guard count <= Int(Int32.max) else { throw CollectiveError("a bucket of \(count) values is too large for one MPI_Iallreduce") }
        let (type, op) = try element.isFloat32 ? (cmpi_float(), cmpi_sum()) : UserReductions.typeAndSum(of: element)
        var request: MPI_Request?
        try MPICommunicator.check(MPI_Iallreduce(cmpi_in_place(), base, Int32(count), type, op, comm, &request),
                                  "MPI_Iallreduce(\(element.name), sum)")
        pending.append(request)
    }

    public func progressReductions() throws {
        guard !pending.isEmpty else { return }
        var done: Int32 = 0
        try MPICommunicator.check(MPI_Testall(Int32(pending.count), &pending, &done, cmpi_statuses_ignore()), "MPI_Testall")
        if done != 0 { pending.removeAll(keepingCapacity: true) }
    }

    public func waitReductions() throws {
        guard !pending.isEmpty else { return }
        try guarded("the gradient allreduce") {
            try MPICommunicator.check(MPI_Waitall(Int32(pending.count), &pending, cmpi_statuses_ignore()), "MPI_Waitall")
        }
        pending.removeAll(keepingCapacity: true)
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard buffer.count > 0 else { return }
        watchdog?.enter("a broadcast")
        defer { watchdog?.leave() }
        try inPieces(buffer.count) { start, n in
            try MPICommunicator.check(MPI_Bcast(buffer.baseAddress! + start, n, cmpi_byte(), Int32(root), comm), "MPI_Bcast")
        }
    }

    public func barrier() throws {
        watchdog?.enter("a barrier")
        defer { watchdog?.leave() }
        try MPICommunicator.check(MPI_Barrier(comm), "MPI_Barrier")
    }

    /// A barrier for ranks that finish their share of work at different times: no watchdog (the
    /// others are busy, not lost), and the wait sleeps between tests instead of spinning on a core
    /// another rank is computing on.
    public func waitForAll() throws {
        var request: MPI_Request? = nil
        try MPICommunicator.check(MPI_Ibarrier(comm, &request), "MPI_Ibarrier")
        var done: Int32 = 0
        while done == 0 {
            try MPICommunicator.check(MPI_Test(&request, &done, cmpi_status_ignore()), "MPI_Test")
            if done == 0 { usleep(20_000) }
        }
    }

    public func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        watchdog?.enter("an allgather")
        defer { watchdog?.leave() }
        var length = Int32(bytes.count)
        var lengths = [Int32](repeating: 0, count: size)
        try MPICommunicator.check(MPI_Allgather(&length, 1, cmpi_int(), &lengths, 1, cmpi_int(), comm), "MPI_Allgather(lengths)")
        var offsets = [Int32](repeating: 0, count: size)
        for i in 1..<max(1, size) { offsets[i] = offsets[i - 1] + lengths[i - 1] }
        let total = Int(lengths.reduce(0, +))
        var all = [UInt8](repeating: 0, count: max(1, total))
        var mine = bytes.isEmpty ? [0] : bytes
        try MPICommunicator.check(MPI_Allgatherv(&mine, length, cmpi_byte(), &all, &lengths, &offsets, cmpi_byte(), comm),
                                  "MPI_Allgatherv")
        return (0..<size).map { Array(all[Int(offsets[$0])..<Int(offsets[$0] + lengths[$0])]) }
    }

    public func abort(_ message: String, code: Int32) -> Never {
        let line = message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
        // The whole job, not just this rank's group.
        MPI_Abort(cmpi_comm_world(), code)
        exit(code)
    }
}

/// MPI when launched by mpirun (or srun), otherwise a world of one without touching MPI.
public func makeWorldCommunicator(timeout: Double? = nil) throws -> Communicator {
    MPICommunicator.launchedByMPI ? try MPICommunicator(timeout: timeout) : SingleProcessCommunicator()
}

/// MPI types and operations for the sums of `ReductionElement`s MPI does not know, made on first
/// use and kept for the life of the process (as MPI's own are). MPI_Op_create takes a bare C
/// function, without a context pointer, so each element's sum gets a slot and that slot's
/// trampoline calls it. Used from the main thread only (MPI_THREAD_FUNNELED).
enum UserReductions {
    /// Per slot: the sum its trampoline calls, and the operation made from that trampoline.
    private nonisolated(unsafe) static var sums: [ReductionElement.Sum?] = [nil, nil, nil, nil]
    private nonisolated(unsafe) static var operations: [MPI_Op?] = [nil, nil, nil, nil]
    private nonisolated(unsafe) static var contiguousTypes: [Int: MPI_Datatype] = [:]

    private static func call(_ slot: Int, _ input: UnsafeMutableRawPointer?, _ output: UnsafeMutableRawPointer?,
                             _ length: UnsafeMutablePointer<Int32>?) {
        guard let input, let output, let length, let sum = sums[slot] else { return }
        sum(input, output, Int(length.pointee))
    }

    private typealias Trampoline = @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?,
                                                   UnsafeMutablePointer<Int32>?, UnsafeMutablePointer<MPI_Datatype?>?) -> Void
    private static let trampolines: [Trampoline] = [
        { input, output, length, _ in call(0, input, output, length) },
        { input, output, length, _ in call(1, input, output, length) },
        { input, output, length, _ in call(2, input, output, length) },
        { input, output, length, _ in call(3, input, output, length) },
    ]

    static func typeAndSum(of element: ReductionElement) throws -> (MPI_Datatype, MPI_Op) {
        (try datatype(byteCount: element.byteCount), try operation(element.sum))
    }

    /// The commutative MPI operation calling `sum`.
    private static func operation(_ sum: ReductionElement.Sum) throws -> MPI_Op {
        let address = unsafeBitCast(sum, to: UnsafeRawPointer.self)
        if let slot = sums.firstIndex(where: { $0.map { unsafeBitCast($0, to: UnsafeRawPointer.self) } == address }),
           let op = operations[slot] {
            return op
        }
        guard let free = sums.firstIndex(where: { $0 == nil }) else {
            throw CollectiveError("more than \(sums.count) element types to sum: MPICommunicator needs another trampoline")
        }
        var op: MPI_Op?
        try MPICommunicator.check(MPI_Op_create(trampolines[free], 1, &op), "MPI_Op_create")
        guard let op else { throw CollectiveError("MPI_Op_create returned no operation") }
        sums[free] = sum
        operations[free] = op
        return op
    }

    /// MPI_UINT16_T for 2-byte elements: binary16 gradients have always crossed as it, and keeping it
    /// keeps MPI's choice of algorithm, so the sums' bits. Other widths: that many contiguous bytes.
    private static func datatype(byteCount: Int) throws -> MPI_Datatype {
        if byteCount == 2 { return cmpi_uint16() }
        if let made = contiguousTypes[byteCount] { return made }
        var type: MPI_Datatype?
        try MPICommunicator.check(MPI_Type_contiguous(Int32(byteCount), cmpi_byte(), &type), "MPI_Type_contiguous")
        try MPICommunicator.check(MPI_Type_commit(&type), "MPI_Type_commit")
        guard let type else { throw CollectiveError("MPI_Type_contiguous returned no type") }
        contiguousTypes[byteCount] = type
        return type
    }
}

/// Watches blocking collectives from a second thread. MPI may only be called from the main
/// thread here (MPI_THREAD_FUNNELED), so on a timeout it writes its sentence and ends this
/// process with _exit; mpirun sees a rank fail and stops the others.
final class CollectiveWatchdog: @unchecked Sendable {
    let timeout: Double
    let rank: Int
    let size: Int
    private let enteredAt = Atomic<Int64>(0)   // nanoseconds on the monotonic clock; 0: not in a collective
    private let lock = NSLock()
    private var operation = ""

    init(timeout: Double, rank: Int, size: Int) {
        self.timeout = timeout
        self.rank = rank
        self.size = size
        let thread = Thread { [self] in watch() }
        thread.stackSize = 1 << 18
        thread.start()
    }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    func enter(_ name: String) {
        lock.lock(); operation = name; lock.unlock()
        enteredAt.store(CollectiveWatchdog.now(), ordering: .releasing)
    }

    func leave() { enteredAt.store(0, ordering: .releasing) }

    private func watch() {
        while true {
            Thread.sleep(forTimeInterval: 1)
            let since = enteredAt.load(ordering: .acquiring)
            guard since != 0 else { continue }
            let waited = Double(CollectiveWatchdog.now() - since) / 1e9
            if waited > timeout {
                lock.lock(); let name = operation; lock.unlock()
                var host = [CChar](repeating: 0, count: 256)
                gethostname(&host, 255)
                let line = "digits: rank \(rank) of \(size): no answer in \(name) for \(Int(waited)) s; "
                    + "another rank or its host is lost (process killed, host down or link cut). Stopping; "
                    + "resume from the last checkpoint, on fewer ranks if need be (--resume).\n"
                _ = line.withCString { write(2, $0, strlen($0)) }
                _exit(3)
            }
        }
    }
}
