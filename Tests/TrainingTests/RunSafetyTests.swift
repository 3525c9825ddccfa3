import Collective
import Datasets
import Foundation
import NeuralNet
import Testing
@testable import Training

/// A checkpoint directory belongs to one run; a stop request ends every rank after the same step
/// with a resumable state; a non-finite gradient stops the run before it reaches the weights.
@Suite struct RunSafetyTests {
    static let model = "conv4k3p1-bn-relu-pool2-flatten-drop0.2-dense10"

    func trainer(communicator: Communicator = SingleProcessCommunicator(), lr: Float = 1e-3, epochs: Int = 2,
                 exchange: ExchangeSettings = ExchangeSettings(),
                 optimizer: OptimizerKind = .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)) throws -> Trainer {
        var config = TrainingConfiguration(model: try ModelSpec(parsing: Self.model), epochs: epochs, batchSize: 16,
                                           optimizer: optimizer, learningRate: lr,
                                           schedule: .cosine, seed: 4)
        config.exchange = exchange
        return try Trainer(configuration: config, train: DataParallelTests.synthetic, communicator: communicator)
    }

    /// A small real checkpoint (tensors and metadata) of a trainer after two steps.
    func checkpoint() throws -> (tensors: [StoredTensor], metadata: [String: String]) {
        let t = try trainer()
        _ = try t.runEpoch(stepLimit: 2)
        return (try t.checkpointTensors(), try t.checkpointMetadata(extra: []))
    }

    /// Checkpoints of `run` at `steps` in `dir`, written by a store that is closed again (its lock released).
    func write(run: String, steps: [Int], in dir: ScratchDir) throws {
        let (tensors, metadata) = try checkpoint()
        let store = try CheckpointStore(directory: dir.path, keep: 3)
        try store.adopt(run: run, replacingOthers: false)
        for step in steps { try store.save(tensors: tensors, metadata: metadata, step: step) }
    }

    func names(_ dir: ScratchDir) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).filter { $0.hasPrefix("step-") }.sorted()
    }

    @Test func aNewRunIsRefusedADirectoryHoldingAnotherRunsCheckpointsAndLosesNothing() throws {
        let dir = ScratchDir()
        let (tensors, metadata) = try checkpoint()
        try write(run: "run-a", steps: [1872, 1873, 1874], in: dir)
        let before = names(dir)
        let second = try CheckpointStore(directory: dir.path, keep: 3)
        let error = #expect(throws: CheckpointError.self) { try second.adopt(run: "run-b", replacingOthers: false) }
        let text = error?.description ?? ""
        #expect(text.contains("holds the checkpoints of another run: run run-a, model \(Self.model), up to step 1874 (3 files)"), "\(text)")
        #expect(text.contains("--resume") && text.contains("--checkpoint-dir") && text.contains("--overwrite-checkpoints"))
        #expect(names(dir) == before)
        // The same run (a resume) may go on writing here, and prunes only its own files.
        try second.adopt(run: "run-a", replacingOthers: false)
        try second.save(tensors: tensors, metadata: metadata, step: 1875)
        #expect(names(dir) == ["step-00001873.safetensors", "step-00001874.safetensors", "step-00001875.safetensors"])
    }

    @Test func overwriteCheckpointsDeletesTheOtherRunsFilesAndOnlyThen() throws {
        let dir = ScratchDir()
        let (tensors, metadata) = try checkpoint()
        try write(run: "run-a", steps: [100, 200], in: dir)
        let second = try CheckpointStore(directory: dir.path, keep: 3)
        let removed = try second.adopt(run: "run-b", replacingOthers: true)
        #expect(removed.count == 2 && names(dir).isEmpty)
        for step in [10, 20] { try second.save(tensors: tensors, metadata: metadata, step: step) }
        #expect(names(dir) == ["step-00000010.safetensors", "step-00000020.safetensors"])
        #expect(CheckpointStore.scan(dir.path).allSatisfy { $0.runID == "run-b" })
    }

    @Test func aSecondWriterIsRefusedWhileTheFirstHoldsTheLock() throws {
        let dir = ScratchDir()
        var first: CheckpointStore? = try CheckpointStore(directory: dir.path)
        let error = #expect(throws: CheckpointError.self) { _ = try CheckpointStore(directory: dir.path) }
        #expect(error?.description.contains("is in use by another digits run (pid \(getpid()) on ") == true, "\(String(describing: error))")
        #expect(first != nil)
        first = nil   // the lock goes with the store (or the process)
        _ = try CheckpointStore(directory: dir.path)
    }

    @Test func pruningKeepsOtherFilesAndLatestIsWrittenFirst() throws {
        let dir = ScratchDir()
        let (tensors, metadata) = try checkpoint()
        // A file whose header does not read belongs to no known run: never pruned.
        _ = FileManager.default.createFile(atPath: dir.path + "/step-00000005.safetensors", contents: Data("not a checkpoint".utf8))
        let store = try CheckpointStore(directory: dir.path, keep: 2)
        try store.adopt(run: "run-a", replacingOthers: false)
        for step in [10, 20, 30] { try store.save(tensors: tensors, metadata: metadata, step: step) }
        #expect(names(dir) == ["step-00000005.safetensors", "step-00000020.safetensors", "step-00000030.safetensors"])
        #expect(try String(contentsOfFile: dir.path + "/latest", encoding: .utf8) == "step-00000030.safetensors\n")
    }

    @Test func resumeTakesTheNewestIntactFileOfItsRunWhateverLatestSays() throws {
        let dir = ScratchDir()
        let (tensors, metadata) = try checkpoint()
        let store = try CheckpointStore(directory: dir.path, keep: 5)
        try store.adopt(run: "run-a", replacingOthers: false)
        for step in [10, 20] { try store.save(tensors: tensors, metadata: metadata, step: step) }
        // The disk filled while `latest` was being replaced: it still names the older file.
        try "step-00000010.safetensors\n".write(toFile: dir.path + "/latest", atomically: false, encoding: .utf8)
        let found = try #require(CheckpointStore.newestGood(in: dir.path))
        #expect(found.path.hasSuffix("step-00000020.safetensors") && found.warnings.isEmpty)
        #expect(found.checkpoint.metadata["run_id"] == "run-a")
    }

    @Test func aDirectoryThatCannotBeMadeIsNamedWithTheReason() throws {
        let dir = ScratchDir()
        let file = dir.path + "/plain-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let error = #expect(throws: CheckpointError.self) { _ = try CheckpointStore(directory: file + "/checkpoints") }
        #expect(error?.description == "\(file)/checkpoints: cannot be made: \(file) is a file, not a directory")
        let other = #expect(throws: CheckpointError.self) { _ = try CheckpointStore(directory: file) }
        #expect(other?.description == "\(file): exists and is not a directory")
    }

    /// Rank 1 alone is asked to stop; every rank stops after the same step, and a run resumed from
    /// there ends bit-identical to one never stopped (both wire formats).
    @Test(arguments: [ExchangeSettings(compression: .none, bucketBytes: 256), ExchangeSettings(compression: .fp16, bucketBytes: 256)])
    func aStopRequestOnOneRankStopsEveryRankAfterTheSameStep(exchange: ExchangeSettings) throws {
        let uninterrupted = try LocalGroup(size: 2).run { comm -> String in
            let t = try self.trainer(communicator: comm, epochs: 1, exchange: exchange)
            while !t.isFinished { _ = try t.runEpoch() }
            try t.synchronizeBuffers()
            return t.weightsDigest()
        }
        let stopped = try LocalGroup(size: 2).run { comm -> (step: Int, interrupted: Bool, bytes: [UInt8]) in
            let t = try self.trainer(communicator: comm, epochs: 1, exchange: exchange)
            var asked = 0
            t.stopRequest = {
                asked += 1
                return comm.rank == 1 && asked >= 7   // rank 1 votes from its 7th step on
            }
            while !t.isFinished { _ = try t.runEpoch() }
            let bytes = try Safetensors.encode(t.checkpointTensors(), metadata: t.checkpointMetadata(extra: []))
            return (t.globalStep, t.interrupted, bytes)
        }
        #expect(stopped.map(\.step) == [7, 7] && stopped.allSatisfy(\.interrupted))
        let resumed = try LocalGroup(size: 2).run { comm -> String in
            let t = try self.trainer(communicator: comm, epochs: 1, exchange: exchange)
            let d = try Safetensors.decode(stopped[0].bytes, path: "mem")
            try t.restore(tensors: d.tensors, metadata: d.metadata, path: "mem")
            while !t.isFinished { _ = try t.runEpoch() }
            try t.synchronizeBuffers()
            return t.weightsDigest()
        }
        #expect(Set(uninterrupted).count == 1 && resumed == uninterrupted)
    }

    @Test func aStopRequestAloneStopsAfterTheStepInProgress() throws {
        let t = try trainer()
        var steps = 0
        t.stopRequest = { steps += 1; return steps == 3 }
        _ = try t.runEpoch()
        #expect(t.globalStep == 3 && t.interrupted && t.isFinished)
    }

    @Test func aNonFiniteGradientStopsTheRunBeforeTheUpdate() throws {
        // An infinite rate: the first update makes the weights infinite, the next step's gradients NaN.
        let t = try trainer(lr: .infinity, optimizer: .sgd(momentum: 0, nesterov: false))
        let error = #expect(throws: TrainingDiverged.self) { while !t.isFinished { _ = try t.runEpoch() } }
        let text = error?.description ?? ""
        #expect(text.contains("are not finite (NaN or infinity): training diverged") && text.contains("lower --lr"), "\(text)")
        // The update of the failing step was not applied: the last step counted is the one before.
        #expect(error.map { $0.step == t.globalStep + 1 } == true)
        // And no checkpoint of non-finite weights can be made.
        #expect(t.globalStep == 1)
        #expect(throws: TrainingDiverged.self) { try t.checkWeightsAreFinite() }
    }

    @Test func nonFiniteValuesAreFoundAnywhere() {
        var values = [Float](repeating: 1e38, count: 1001)
        #expect(allFinite(values, values.count))
        for bad in [Float.nan, .infinity, -.infinity, -Float.nan] {
            for at in [0, 500, 1000] {
                var copy = values
                copy[at] = bad
                #expect(!allFinite(copy, copy.count))
            }
        }
        values[3] = -Float.greatestFiniteMagnitude
        #expect(allFinite(values, values.count))
    }
}
