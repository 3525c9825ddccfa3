import Datasets
import Foundation
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rank 0's checkpoints in one directory (DESIGN.md decision 6): `step-00001234.safetensors`
/// files, each written to a temporary name, fsynced, renamed and the directory fsynced; a
/// `latest` file naming the newest, updated the same way; the newest `keep` of this run kept.
///
/// A directory belongs to one run at a time. Every checkpoint records its run's identity
/// (metadata `run_id`, kept across resumes); while a run writes, it holds an exclusive `flock` on
/// `.lock` in the directory, so a second run is refused at once; a run only ever prunes its own
/// files; and a run is refused a directory that holds another run's checkpoints unless it is told
/// to replace them (`adopt(run:replacingOthers:)`).
public final class CheckpointStore {
    public static let formatVersion = "1"
    /// The identity of checkpoints written before digits recorded one.
    public static let unrecordedRun = "unrecorded"
    public let directory: String
    public let keep: Int
    /// The run writing here, once `adopt` has named it.
    public private(set) var runID: String?
    /// Checkpoint files of this run in the directory, by step.
    private var own: [Int: String] = [:]
    /// What the directory held when it was opened.
    public let found: [CheckpointFile]
    private let lockDescriptor: Int32

    /// Opens `directory` for writing: creates it (and its parents), takes its lock, proves a file
    /// can be written there (before any training it would be meant to save), and lists its checkpoints.
    public init(directory: String, keep: Int = 3) throws {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.keep = max(1, keep)
        try CheckpointStore.makeDirectories(self.directory)
        lockDescriptor = try CheckpointStore.lock(self.directory)
        do {
            try CheckpointStore.probeWritable(self.directory)
        } catch {
            close(lockDescriptor)
            throw error
        }
        found = CheckpointStore.scan(self.directory)
    }

    deinit { close(lockDescriptor) }

    /// A new run identity: 128 random bits in hex.
    public static func newRunID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// Makes `run` the writer of this directory. Checkpoints of any other run here are refused
    /// with a sentence saying what to do, or, with `replacingOthers`, deleted (their paths are returned).
    @discardableResult
    public func adopt(run: String, replacingOthers: Bool) throws -> [String] {
        let others = found.filter { $0.runID != nil && $0.runID != run }
        if !others.isEmpty && !replacingOthers {
            let runs = Dictionary(grouping: others, by: { $0.runID! })
            let described = runs.map { id, files -> String in
                let newest = files.max { ($0.step ?? -1) < ($1.step ?? -1) }
                return "run \(id == CheckpointStore.unrecordedRun ? "(identity not recorded)" : String(id.prefix(8)))"
                    + (newest?.model.map { ", model \($0)" } ?? "") + (newest?.step.map { ", up to step \($0)" } ?? "")
                    + " (\(files.count) file\(files.count == 1 ? "" : "s"))"
            }.sorted().joined(separator: "; ")
            throw CheckpointError(directory, "holds the checkpoints of another run: \(described). "
                                  + "Continue that run with --resume, give this run another --checkpoint-dir, "
                                  + "or pass --overwrite-checkpoints to delete them and start here")
        }
        for file in others { unlink(file.path) }
        if !others.isEmpty {
            let fd = open(directory, O_RDONLY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
        runID = run
        own = [:]
        for file in found where file.runID == run { if let step = file.step { own[step] = file.path } }
        return others.map(\.path)
    }

    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".safetensors"
    }

    /// The step in a checkpoint file name (nil for any other name).
    public static func step(ofFile name: String) -> Int? {
        guard name.hasPrefix("step-"), name.hasSuffix(".safetensors") else { return nil }
        let digits = name.dropFirst(5).dropLast(12)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// Checkpoint files in the directory, newest (highest step) first. Temporary files never match.
    public func checkpoints() -> [String] { CheckpointStore.scan(directory).map(\.path) }

    /// Writes a checkpoint of this run (its identity added to the metadata) and returns its path and size.
    @discardableResult
    public func save(tensors: [StoredTensor], metadata: [String: String], step: Int) throws -> (path: String, bytes: Int) {
        guard let runID else { throw CheckpointError(directory, "no run has adopted this checkpoint directory") }
        var metadata = metadata
        metadata["run_id"] = runID
        let bytes = try Safetensors.encode(tensors, metadata: metadata)
        return (try save(bytes, step: step), bytes.count)
    }

    /// Writes encoded checkpoint bytes atomically, then `latest`, then prunes this run's oldest files.
    @discardableResult
    public func save(_ bytes: [UInt8], step: Int) throws -> String {
        let name = CheckpointStore.fileName(step: step)
        let path = directory + "/" + name
        try writeDurably(bytes, to: path)
        own[step] = path
        // `latest` first: a failure after this point leaves both the new file and the old ones.
        try writeDurably(Array((name + "\n").utf8), to: directory + "/latest")
        for old in own.keys.sorted(by: >).dropFirst(keep) {
            if let oldPath = own.removeValue(forKey: old) { unlink(oldPath) }
        }
        return path
    }

    func writeDurably(_ bytes: [UInt8], to path: String) throws {
        try bytes.withUnsafeBytes { try Training.writeDurably($0, to: path) }
    }

    /// Reads and verifies one checkpoint file.
    public static func read(_ path: String) throws -> (tensors: [StoredTensor], metadata: [String: String]) {
        try verify(Safetensors.decode(try Safetensors.readFile(path), path: path), path: path)
    }

    /// A decoded safetensors file is a checkpoint this digits reads.
    @discardableResult
    public static func verify(_ decoded: (tensors: [StoredTensor], metadata: [String: String]), path: String) throws
        -> (tensors: [StoredTensor], metadata: [String: String]) {
        guard let version = decoded.metadata["format_version"] else {
            throw CheckpointError(path, "no format_version in the metadata; not a digits checkpoint")
        }
        guard version == formatVersion else {
            throw CheckpointError(path, "format version \(version); this digits reads version \(formatVersion)")
        }
        return decoded
    }

    /// The newest checkpoint of this directory's run that reads and verifies (see the static form).
    public func newestGood() -> (path: String, checkpoint: (tensors: [StoredTensor], metadata: [String: String]), warnings: [String])? {
        CheckpointStore.newestGood(in: directory, run: runID)
    }

    /// The newest checkpoint that reads and verifies, with a warning for each newer one that did not.
    /// Only one run's files are candidates: `run`, or else the run of the file `latest` names, or else
    /// the run of the newest readable file. The newest intact file of that run wins whatever `latest`
    /// says (a write can fail between a checkpoint and `latest`).
    public static func newestGood(in directory: String, run: String? = nil)
        -> (path: String, checkpoint: (tensors: [StoredTensor], metadata: [String: String]), warnings: [String])? {
        let files = scan(directory)
        var chosen = run
        if chosen == nil, let named = try? pathNamed(byLatest: directory + "/latest") {
            chosen = files.first { $0.path == named }?.runID
        }
        if chosen == nil { chosen = files.first { $0.runID != nil }?.runID }
        var warnings = [String]()
        // Files whose header does not read may be this run's: tried (and named in a warning).
        for file in files where file.runID == nil || file.runID == chosen {
            do { return (file.path, try read(file.path), warnings) }
            catch { warnings.append("skipping \(error)") }
        }
        return nil
    }

    /// The checkpoint file a reader of checkpoints (evaluate, predict, inspect) is pointed at: `path`
    /// itself when it is a checkpoint file; the file a `latest` file names; for a checkpoint
    /// directory, the file its `latest` names, or its newest `step-*.safetensors` when it has no
    /// `latest`. Reads no checkpoint (`read` verifies); the errors name the path and what is missing.
    public static func resolve(path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CheckpointError(path, errno == ENOENT ? "no such file or directory" : "cannot read: \(String(cString: strerror(errno)))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            var directory = path
            while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
            let pointer = (directory == "/" ? "" : directory) + "/latest"
            if access(pointer, F_OK) == 0 { return try resolveLatest(pointer) }
            guard let newest = scan(directory).first else {
                throw CheckpointError(path, "is a directory with no checkpoint in it (no latest file, no step-*.safetensors); "
                                      + "name a checkpoint file, or the --checkpoint-dir digits train wrote to")
            }
            return newest.path
        case S_IFREG:
            return path.split(separator: "/").last == "latest" ? try resolveLatest(path) : path
        default:
            throw CheckpointError(path, "is not a file or a directory")
        }
    }

    /// The checkpoint file a `latest` file names, which must be there.
    static func resolveLatest(_ pointer: String) throws -> String {
        let target = try pathNamed(byLatest: pointer)
        var info = stat()
        guard stat(target, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            let directory = target.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            let newest = scan(directory.isEmpty ? "." : directory).first { $0.path != target }
            throw CheckpointError(pointer, "names \(target.split(separator: "/").last.map(String.init) ?? target), which is not there"
                                  + (newest.map { "; the newest checkpoint beside it is \($0.path)" } ?? ""))
        }
        return target
    }

    /// The path a `latest` file names: the one line it holds (as `save` writes it), a file name in
    /// the directory holding `latest`.
    static func pathNamed(byLatest pointer: String) throws -> String {
        let fd = open(pointer, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CheckpointError(pointer, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 4097)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 0 else { throw CheckpointError(pointer, "cannot read: \(String(cString: strerror(errno)))") }
        let name = String(decoding: bytes[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard n < bytes.count, !name.isEmpty, !name.contains("\n"), !name.contains("\0"), !name.contains("/") else {
            throw CheckpointError(pointer, "is not a latest file of digits (one line naming a checkpoint file beside it)")
        }
        let directory = pointer.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return pointer.hasPrefix("/") || !directory.isEmpty ? directory + "/" + name : name
    }

    /// The checkpoint files of a directory with what their headers say, newest (highest step) first.
    public static func scan(_ directory: String) -> [CheckpointFile] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.compactMap { name -> CheckpointFile? in
            guard let step = step(ofFile: name) else { return nil }
            let path = directory + "/" + name
            let metadata = try? headerMetadata(path)
            return CheckpointFile(path: path, step: step,
                                  runID: metadata.map { $0["run_id"] ?? unrecordedRun },
                                  model: metadata?["model"])
        }.sorted { ($0.step ?? 0) > ($1.step ?? 0) }
    }

    /// The `__metadata__` of a safetensors file, reading only its header (not verified: for
    /// telling runs apart; `read` verifies).
    static func headerMetadata(_ path: String) throws -> [String: String] {
        guard let metadata = try Safetensors.readHeader(path)["__metadata__"] as? [String: Any] else {
            throw CheckpointError(path, "no __metadata__ in the header")
        }
        return metadata.compactMapValues { $0 as? String }
    }

    /// `mkdir -p`, with a sentence naming the part of the path that is in the way.
    static func makeDirectories(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            var info = stat()
            if stat(prefix, &info) == 0 {
                guard (info.st_mode & S_IFMT) == S_IFDIR else {
                    throw CheckpointError(path, prefix == path ? "exists and is not a directory"
                                          : "cannot be made: \(prefix) is a file, not a directory")
                }
                continue
            }
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw CheckpointError(path, "cannot create the checkpoint directory \(prefix): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Takes the directory's lock for the life of the process (or of the store), or says who holds it.
    static func lock(_ directory: String) throws -> Int32 {
        let path = directory + "/.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(directory, "cannot write to the checkpoint directory (creating its lock file: \(String(cString: strerror(errno))))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let reason = errno
            var holder = [UInt8](repeating: 0, count: 256)
            let n = holder.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw CheckpointError(directory, "cannot lock the checkpoint directory: \(String(cString: strerror(reason)))")
            }
            let who = n > 0 ? String(decoding: holder[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "another process"
            throw CheckpointError(directory, "is in use by another digits run (\(who.isEmpty ? "another process" : who)); "
                                  + "wait for it to finish, or give this run another --checkpoint-dir")
        }
        var host = [UInt8](repeating: 0, count: 256)
        _ = host.withUnsafeMutableBufferPointer { gethostname(UnsafeMutableRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), 255) }
        let name = String(decoding: host.prefix { $0 != 0 }, as: UTF8.self)
        let text = Array("pid \(getpid()) on \(name)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// Creates, writes, syncs and removes a file: a read-only or full directory is found now.
    static func probeWritable(_ directory: String) throws {
        let probe = directory + "/.tmp-\(getpid())-probe"
        let fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CheckpointError(directory, "cannot write a file in the checkpoint directory: \(String(cString: strerror(errno)))")
        }
        let ok = write(fd, "digits\n", 7) == 7 && fsync(fd) == 0
        let reason = String(cString: strerror(errno))
        close(fd)
        unlink(probe)
        guard ok else { throw CheckpointError(directory, "cannot write a file in the checkpoint directory: \(reason)") }
    }
}

/// A checkpoint file in a directory and what its header says (nil fields: unreadable).
public struct CheckpointFile: Sendable, Equatable {
    public let path: String
    public let step: Int?
    /// The run that wrote it (`CheckpointStore.unrecordedRun` for files older than run identities).
    public let runID: String?
    public let model: String?
}

/// Metadata values that must round-trip exactly (Doubles as their bit patterns).
func exactString(_ values: [Double]) -> String { values.map { String($0.bitPattern, radix: 16) }.joined(separator: ",") }
func exactDoubles(_ text: String) -> [Double]? {
    let parts = text.split(separator: ",").map { UInt64($0, radix: 16) }
    guard parts.allSatisfy({ $0 != nil }) else { return nil }
    return parts.map { Double(bitPattern: $0!) }
}
