import Foundation
import NeuralNet
import Testing
@testable import Training

/// `--checkpoint` (and inspect's argument) takes a checkpoint file, a checkpoint directory, or its
/// `latest` file; `CheckpointStore.resolve` turns each into the file, or says which path lacks what.
@Suite struct CheckpointResolutionTests {
    func touch(_ path: String, _ text: String = "not read by resolve") {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    func problem(_ path: String) -> String? {
        do { _ = try CheckpointStore.resolve(path: path); return nil } catch { return "\(error)" }
    }

    @Test func aFileIsItselfAndADirectoryOrItsLatestIsTheFileLatestNames() throws {
        let dir = ScratchDir()
        for step in [10, 20, 30] { touch(dir.path + "/" + CheckpointStore.fileName(step: step)) }
        touch(dir.path + "/latest", "step-00000020.safetensors\n")   // not the highest step: latest decides
        let twenty = dir.path + "/step-00000020.safetensors"
        #expect(try CheckpointStore.resolve(path: dir.path + "/step-00000010.safetensors") == dir.path + "/step-00000010.safetensors")
        #expect(try CheckpointStore.resolve(path: dir.path) == twenty)
        #expect(try CheckpointStore.resolve(path: dir.path + "/") == twenty)
        #expect(try CheckpointStore.resolve(path: dir.path + "/latest") == twenty)
    }

    @Test func aDirectoryWithoutLatestGivesItsHighestStep() throws {
        let dir = ScratchDir()
        for step in [900, 1874, 30] { touch(dir.path + "/" + CheckpointStore.fileName(step: step)) }
        touch(dir.path + "/.tmp-1-step-00009999.safetensors")   // a temporary file is never a checkpoint
        #expect(try CheckpointStore.resolve(path: dir.path) == dir.path + "/step-00001874.safetensors")
    }

    @Test func whatAStoreWritesResolvesAndReads() throws {
        let dir = ScratchDir()
        let t = try Trainer(configuration: TrainingConfiguration(model: try ModelSpec(parsing: "gap-dense10"), batchSize: 16, seed: 4),
                            train: DataParallelTests.synthetic)
        _ = try t.runEpoch(stepLimit: 1)
        let store = try CheckpointStore(directory: dir.path, keep: 3)
        try store.adopt(run: "run-a", replacingOthers: false)
        for step in [1, 2] { try store.save(tensors: try t.checkpointTensors(), metadata: try t.checkpointMetadata(extra: []), step: step) }
        for path in [dir.path, dir.path + "/latest"] {
            let file = try CheckpointStore.resolve(path: path)
            #expect(file == dir.path + "/step-00000002.safetensors")
            #expect(try TrainedModel(checkpoint: file).metadata["run_id"] == "run-a")
        }
    }

    @Test func eachMissingPieceIsNamed() throws {
        let dir = ScratchDir()
        #expect(problem(dir.path + "/nothing") == "\(dir.path)/nothing: no such file or directory")
        #expect(problem(dir.path + "/nothing/latest") == "\(dir.path)/nothing/latest: no such file or directory")
        // A directory with no latest and no checkpoint (a typo'd --checkpoint-dir, say).
        touch(dir.path + "/notes.txt")
        #expect(problem(dir.path)?.hasPrefix("\(dir.path): is a directory with no checkpoint in it (no latest file, no step-*.safetensors)") == true)
        // latest names a file that was deleted; the newest one there is suggested.
        touch(dir.path + "/step-00000010.safetensors")
        touch(dir.path + "/latest", "step-00000040.safetensors\n")
        let expected = "\(dir.path)/latest: names step-00000040.safetensors, which is not there; "
            + "the newest checkpoint beside it is \(dir.path)/step-00000010.safetensors"
        #expect(problem(dir.path) == expected)
        #expect(problem(dir.path + "/latest") == expected)
        // A latest that is not one line naming a file beside it.
        for text in ["", "\n", "step-1.safetensors\nstep-2.safetensors\n", "../elsewhere/step-00000010.safetensors\n"] {
            touch(dir.path + "/latest", text)
            #expect(problem(dir.path) == "\(dir.path)/latest: is not a latest file of digits (one line naming a checkpoint file beside it)", "\(text)")
        }
        touch(dir.path + "/latest", String(repeating: "x", count: 5000))
        #expect(problem(dir.path + "/latest")?.hasSuffix("is not a latest file of digits (one line naming a checkpoint file beside it)") == true)
        #expect(problem("/dev/null") == "/dev/null: is not a file or a directory")
    }

    @Test func resumeStillReadsLatestTheSameWay() throws {
        // newestGood and resolve share the reading of `latest` (pathNamed(byLatest:)).
        let dir = ScratchDir()
        touch(dir.path + "/latest", "  step-00000007.safetensors \n")
        #expect(try CheckpointStore.pathNamed(byLatest: dir.path + "/latest") == dir.path + "/step-00000007.safetensors")
    }
}
