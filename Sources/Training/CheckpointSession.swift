import Collective
import Datasets

/// The checkpoints of one training run as every rank takes part in them: rank 0 owns the
/// directory (a `CheckpointStore`: locked, proved writable, checked for other runs' files) and
/// reads the checkpoint to resume from; every rank restores from the bytes rank 0 sends, and every
/// rank takes part in each save (the buffers' mean and the per-rank sums are collective), which
/// rank 0 writes.
public final class CheckpointSession {
    let communicator: Communicator
    let store: CheckpointStore?
    /// False with --no-checkpoints: no rank saves.
    public let writes: Bool
    /// The run's identity: new, or the resumed checkpoint's (rank 0).
    public let runID: String
    /// Rank 0: where the resumed checkpoint came from, and its bytes.
    private let resumeSource: String?
    private var resumeBytes: [UInt8]
    /// Checkpoint files of another run deleted at the start (`replacingOthers`), on rank 0.
    public let replaced: [String]
    public private(set) var lastSavedPath: String?
    private var lastSavedStep = -1
    /// Seconds per save on rank 0 (gathering, encoding, writing), and the size of the last file.
    public private(set) var writeSeconds: [Double] = []
    public private(set) var bytesPerCheckpoint = 0
    /// The last finished epoch's metrics line, saved with every checkpoint (and restored from one).
    public var lastMetrics = ""

    /// Opens the run's checkpoints. `resume` is nil, "latest" (the newest intact checkpoint of the
    /// directory's run) or a file. Collective only in that every rank must construct it; the work is rank 0's.
    public init(communicator: Communicator, directory: String, keep: Int, writes: Bool, resume: String?,
                replacingOthers: Bool, warning: (String) -> Void) throws {
        self.communicator = communicator
        self.writes = writes
        guard communicator.isRoot else {
            store = nil; runID = ""; resumeSource = resume; resumeBytes = []; replaced = []
            return
        }
        let store = writes ? try CheckpointStore(directory: directory, keep: keep) : nil
        var source = resume
        var runID = CheckpointStore.newRunID()
        var bytes = [UInt8]()
        if let resume {
            if resume == "latest" {
                guard let found = store?.newestGood() ?? CheckpointStore.newestGood(in: directory) else {
                    throw CheckpointError(directory, "no readable checkpoint to resume from")
                }
                found.warnings.forEach(warning)
                source = found.path
            }
            let path = source ?? resume
            bytes = try Safetensors.readFile(path)
            let checkpoint = try CheckpointStore.verify(Safetensors.decode(bytes, path: path), path: path)
            runID = checkpoint.metadata["run_id"] ?? CheckpointStore.unrecordedRun
        }
        replaced = try store?.adopt(run: runID, replacingOthers: replacingOthers) ?? []
        self.store = store
        self.runID = runID
        resumeSource = source
        resumeBytes = bytes
    }

    /// Every rank: rank 0 sends the resumed checkpoint's bytes; each rank verifies them and restores
    /// `trainer`. Returns the file and its metadata (nil when the run is not resuming).
    public func restore(_ trainer: Trainer) throws -> (source: String, metadata: [String: String])? {
        guard let source = resumeSource else { return nil }
        var bytes = resumeBytes
        var length = [Double(bytes.count)]
        try communicator.allreduceMax(&length)
        if !communicator.isRoot { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        try bytes.withUnsafeMutableBytes { try communicator.broadcast($0, root: 0) }
        resumeBytes = []
        let checkpoint = try Safetensors.decode(bytes, path: source)
        try trainer.restore(tensors: checkpoint.tensors, metadata: checkpoint.metadata, path: source)
        lastMetrics = checkpoint.metadata["last_metrics"] ?? ""
        return (source, checkpoint.metadata)
    }

    /// Every rank, at the same step: checks that the weights are finite (the same on every rank, so
    /// all refuse together), gathers the tensors and metadata, and rank 0 writes them. Once per step.
    public func save(_ trainer: Trainer, extra: [(String, String)]) throws {
        guard writes, lastSavedStep != trainer.globalStep else { return }
        lastSavedStep = trainer.globalStep
        let t0 = monotonicSeconds()
        try trainer.checkWeightsAreFinite()
        let tensors = try trainer.checkpointTensors()
        let metadata = try trainer.checkpointMetadata(extra: extra + [("last_metrics", lastMetrics)])
        guard let store else { return }
        do {
            let saved = try store.save(tensors: tensors, metadata: metadata, step: trainer.globalStep)
            lastSavedPath = saved.path
            bytesPerCheckpoint = saved.bytes
        } catch let error as CheckpointError {
            // Say what is still safe: the files already written are intact.
            let size = bytesPerCheckpoint > 0 ? "\(bytesPerCheckpoint) bytes" : "about the model's size times 3"
            throw CheckpointError(error.path, error.problem + "; the checkpoint of step \(trainer.globalStep) was not written"
                                  + (lastSavedPath.map { ", the newest written is \($0)" } ?? "")
                                  + ". Free space (each checkpoint is \(size), and --keep + 1 must fit) and run the same command with --resume")
        }
        writeSeconds.append(monotonicSeconds() - t0)
    }
}
