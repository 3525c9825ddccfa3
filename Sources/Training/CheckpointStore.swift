import Datasets
import Foundation
import NeuralNet
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a run stands: enough, with the tensors, to continue exactly where it stopped.
public struct TrainingPosition: Sendable, Equatable {
    /// The epoch in progress (0-based) and the steps of it already taken.
    public var epoch: Int
    public var stepInEpoch: Int
    /// Optimizer updates taken in all (the schedule's position).
    public var globalStep: Int
    /// Training samples consumed in all, over every rank.
    public var samplesConsumed: Int
    /// Loss sum, correct count and sample count of the epoch in progress, over all ranks.
    public var epochSums: [Double]
    /// The world size and per-rank batch that produced this position.
    public var worldSize: Int
    public var batchSize: Int
}

/// Rank 0's checkpoints in one directory (DESIGN.md decision 6): `step-00001234.safetensors`
/// files, each written to a temporary name, fsynced, renamed and the directory fsynced; a
/// `latest` file naming the newest, updated the same way; the newest `keep` kept.
public final class CheckpointStore {
    public static let formatVersion = "1"
    public let directory: String
    public let keep: Int

    public init(directory: String, keep: Int = 3) throws {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.keep = max(1, keep)
        var info = stat()
        if stat(self.directory, &info) != 0 {
            do { try FileManager.default.createDirectory(atPath: self.directory, withIntermediateDirectories: true) }
            catch { throw CheckpointError(self.directory, "cannot create the checkpoint directory: \(error.localizedDescription)") }
        } else if (info.st_mode & S_IFMT) != S_IFDIR {
            throw CheckpointError(self.directory, "exists and is not a directory")
        }
    }

    public static func fileName(step: Int) -> String {
        let digits = String(step)
        return "step-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".safetensors"
    }

    /// Checkpoint files in the directory, newest (highest step) first. Temporary files never match.
    public func checkpoints() -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { $0.hasPrefix("step-") && $0.hasSuffix(".safetensors") }.sorted(by: >).map { directory + "/" + $0 }
    }

    /// Writes a checkpoint atomically and returns its path and size.
    @discardableResult
    public func save(_ bytes: [UInt8], step: Int) throws -> String {
        let name = CheckpointStore.fileName(step: step)
        let path = directory + "/" + name
        try writeDurably(bytes, to: path)
        try writeDurably(Array((name + "\n").utf8), to: directory + "/latest")
        for old in checkpoints().dropFirst(keep) { unlink(old) }
        return path
    }

    /// temp file in the same directory -> write -> fsync -> rename -> fsync the directory.
    func writeDurably(_ bytes: [UInt8], to path: String) throws {
        let temporary = directory + "/.tmp-\(getpid())-" + (path as NSString).lastPathComponent
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError(temporary, "cannot create: \(String(cString: strerror(errno)))") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                let reason = String(cString: strerror(errno))
                close(fd); unlink(temporary)
                throw CheckpointError(temporary, "write failed: \(reason)")
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let reason = String(cString: strerror(errno))
            close(fd); unlink(temporary)
            throw CheckpointError(temporary, "fsync failed: \(reason)")
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CheckpointError(path, "cannot rename into place: \(reason)")
        }
        let dirfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
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

    /// The newest checkpoint that reads and verifies, with a warning for each newer one that did not.
    public func newestGood() -> (path: String, checkpoint: (tensors: [StoredTensor], metadata: [String: String]), warnings: [String])? {
        var warnings = [String]()
        var candidates = checkpoints()
        // `latest` names the newest complete write; prefer it, then the rest newest first.
        if let text = try? String(contentsOfFile: directory + "/latest", encoding: .utf8) {
            let named = directory + "/" + text.trimmingCharacters(in: .whitespacesAndNewlines)
            if let i = candidates.firstIndex(of: named) { candidates.remove(at: i); candidates.insert(named, at: 0) }
        }
        for path in candidates {
            do { return (path, try CheckpointStore.read(path), warnings) }
            catch { warnings.append("skipping \(error)") }
        }
        return nil
    }
}

/// Metadata values that must round-trip exactly (Doubles as their bit patterns).
func exactString(_ values: [Double]) -> String { values.map { String($0.bitPattern, radix: 16) }.joined(separator: ",") }
func exactDoubles(_ text: String) -> [Double]? {
    let parts = text.split(separator: ",").map { UInt64($0, radix: 16) }
    guard parts.allSatisfy({ $0 != nil }) else { return nil }
    return parts.map { Double(bitPattern: $0!) }
}
