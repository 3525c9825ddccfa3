import Collective
import Datasets
import Foundation
import NeuralNet
import Testing
@testable import Training

@Suite struct CheckpointTests {
    static let model = "conv4k3p1-bn-relu-pool2-flatten-drop0.2-dense10"

    func trainer(epochs: Int = 2, maxSteps: Int? = nil) throws -> Trainer {
        let config = TrainingConfiguration(model: try ModelSpec(parsing: Self.model), epochs: epochs, batchSize: 16,
                                           optimizer: .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), learningRate: 1e-3,
                                           schedule: .cosine, seed: 4, maxSteps: maxSteps)
        return try Trainer(configuration: config, train: DataParallelTests.synthetic)
    }

    func checkpointBytes(_ t: Trainer) throws -> [UInt8] {
        try Safetensors.encode(t.checkpointTensors(), metadata: t.checkpointMetadata(extra: [("last_metrics", "{}")]))
    }

    @Test func everyTensorAndFieldRoundTripsAndResumeIsBitIdentical() throws {
        let uninterrupted = try trainer()
        while !uninterrupted.isFinished { _ = try uninterrupted.runEpoch() }

        let first = try trainer()
        first.stopAtStep = 50   // inside epoch 2 (37 steps per epoch)
        while !first.isFinished { _ = try first.runEpoch() }
        let bytes = try checkpointBytes(first)
        let decoded = try Safetensors.decode(bytes, path: "mem")
        let original = try first.checkpointTensors()
        #expect(decoded.tensors.count == original.count)
        for t in original {
            let back = try #require(decoded.tensors.first { $0.name == t.name })
            #expect(back.shape == t.shape && back.values.map(\.bitPattern) == t.values.map(\.bitPattern))
        }
        #expect(decoded.metadata["global_step"] == "50" && decoded.metadata["epoch"] == "1" && decoded.metadata["step_in_epoch"] == "13")
        #expect(decoded.metadata["model"] == Self.model && decoded.metadata["config.seed"] == "4")

        let resumed = try trainer()
        try resumed.restore(tensors: decoded.tensors, metadata: decoded.metadata, path: "mem")
        #expect(resumed.globalStep == 50 && resumed.epoch == 1 && resumed.stepInEpoch == 13)
        var lastResumed: EpochMetrics?
        while !resumed.isFinished { lastResumed = try resumed.runEpoch() }
        #expect(resumed.weightsDigest() == uninterrupted.weightsDigest())
        #expect(resumed.optimizer.stepCount == uninterrupted.optimizer.stepCount)
        #expect(lastResumed?.trainLoss != nil)
    }

    @Test func aCheckpointOfAnotherModelOrDataIsRefused() throws {
        let t = try trainer()
        _ = try t.runEpoch(stepLimit: 3)
        var decoded = try Safetensors.decode(try checkpointBytes(t), path: "mem")
        let other = try Trainer(configuration: TrainingConfiguration(model: try ModelSpec.named("lenet5"), batchSize: 16, seed: 4),
                                train: DataParallelTests.synthetic)
        #expect(throws: CheckpointError.self) { try other.restore(tensors: decoded.tensors, metadata: decoded.metadata, path: "mem") }
        decoded.metadata["train_data_sha256"] = "something/else"
        let fresh = try trainer()
        let error = #expect(throws: CheckpointError.self) { try fresh.restore(tensors: decoded.tensors, metadata: decoded.metadata, path: "x.safetensors") }
        #expect(error?.description.contains("x.safetensors: was trained on data with checksums something/else") == true)
    }
}

@Suite struct BadCheckpointTests {
    func good() throws -> (bytes: [UInt8], trainer: Trainer) {
        let config = TrainingConfiguration(model: try ModelSpec(parsing: CheckpointTests.model), batchSize: 16, seed: 4)
        let t = try Trainer(configuration: config, train: DataParallelTests.synthetic)
        _ = try t.runEpoch(stepLimit: 2)
        return (try Safetensors.encode(t.checkpointTensors(), metadata: t.checkpointMetadata(extra: [])), t)
    }

    func headerLength(_ bytes: [UInt8]) -> Int { (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) } }

    /// Edits the header JSON and re-seals it with a valid header checksum (so only the edit is wrong).
    func editHeader(_ bytes: [UInt8], _ edit: (inout [String: Any]) -> Void) throws -> [UInt8] {
        let n = headerLength(bytes)
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        var meta = header["__metadata__"] as! [String: String]
        meta["header_sha256"] = String(repeating: "0", count: 64)
        header["__metadata__"] = meta
        edit(&header)
        let json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        return try Safetensors.assemble(header: [UInt8](json), data: Array(bytes[(8 + n)...]))
    }

    func problem(_ bytes: [UInt8], restoreInto trainer: Trainer? = nil) -> String? {
        do {
            let d = try Safetensors.decode(bytes, path: "ck.safetensors")
            try trainer?.restore(tensors: d.tensors, metadata: d.metadata, path: "ck.safetensors")
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func truncatedFile() throws {
        let (bytes, _) = try good()
        #expect(problem(Array(bytes.dropLast(100)))?.contains("truncated") == true)
        #expect(problem(Array(bytes.prefix(5)))?.contains("truncated") == true)
        #expect(problem(Array(bytes.prefix(headerLength(bytes) / 2)))?.contains("truncated") == true)
    }

    @Test func flippedBitInTensorBytes() throws {
        var (bytes, _) = try good()
        bytes[bytes.count - 7] ^= 0x10
        #expect(problem(bytes)?.contains("tensor checksum mismatch") == true)
    }

    @Test func flippedBitInTheHeader() throws {
        let (bytes, _) = try good()
        // Flip a bit inside a metadata value (a digit of global_step), keeping the JSON valid.
        let text = Array("\"global_step\":\"2\"".utf8)
        let at = try #require(Safetensors.find(text, in: bytes))
        var flipped = bytes
        flipped[at + text.count - 2] ^= 0x01   // '2' -> '3'
        #expect(problem(flipped)?.contains("header checksum mismatch") == true)
        var broken = bytes
        broken[12] ^= 0x40   // breaks the JSON itself
        #expect(problem(broken) != nil)
    }

    @Test func absurdHeaderLength() throws {
        var (bytes, _) = try good()
        for i in 0..<8 { bytes[i] = 0 }
        bytes[4] = 1   // 2^32 bytes
        #expect(problem(bytes)?.contains("absurd") == true)
        var pastEnd = try good().bytes
        let n = UInt64(pastEnd.count)   // just past the end, under the limit
        for i in 0..<8 { pastEnd[i] = UInt8((n >> (8 * UInt64(i))) & 0xff) }
        #expect(problem(pastEnd)?.contains("truncated") == true)
    }

    @Test func wrongDtype() throws {
        let (bytes, _) = try good()
        let edited = try editHeader(bytes) { header in
            var entry = header["layers.0.bias"] as! [String: Any]
            entry["dtype"] = "F16"
            header["layers.0.bias"] = entry
        }
        #expect(problem(edited)?.contains("tensor layers.0.bias has dtype F16") == true)
    }

    /// Shapes and offsets whose arithmetic would overflow, under a valid header checksum: a sentence
    /// naming the tensor, never a trap (before, `[2^62, 4]` and an offset of -2^63 trapped).
    @Test func overflowingShapesAndOffsetsAndOverlaps() throws {
        let (bytes, _) = try good()
        func with(_ key: String, _ value: Any) throws -> [UInt8] {
            try editHeader(bytes) { header in
                var entry = header["layers.0.bias"] as! [String: Any]
                entry[key] = value
                header["layers.0.bias"] = entry
            }
        }
        #expect(problem(try with("shape", [1 << 62, 4]))?.contains("tensor layers.0.bias: shape [4611686018427387904, 4] holds more floats") == true)
        #expect(problem(try with("shape", [Int.max, Int.max]))?.contains("holds more floats") == true)
        #expect(problem(try with("shape", [-4]))?.contains("negative dimension") == true)
        #expect(problem(try with("data_offsets", [Int.min, 16]))?.contains("tensor layers.0.bias has data offsets") == true)
        #expect(problem(try with("data_offsets", [16, 0]))?.contains("not a range of the data section") == true)
        // Two tensors over the same bytes: layers.0.bias claims the first 16 bytes of another tensor.
        let n = headerLength(bytes)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        let bias = (header["layers.0.bias"] as! [String: Any])["data_offsets"] as! [Int]
        let other = header.compactMap { entry -> [Int]? in
            guard entry.key != "__metadata__", entry.key != "layers.0.bias",
                  let o = (entry.value as? [String: Any])?["data_offsets"] as? [Int], o[1] - o[0] >= bias[1] - bias[0] else { return nil }
            return o
        }.first!
        let overlapping = try with("data_offsets", [other[0], other[0] + bias[1] - bias[0]])
        #expect(problem(overlapping)?.contains("overlap") == true)
    }

    @Test func missingTensor() throws {
        let (bytes, trainer) = try good()
        let edited = try editHeader(bytes) { header in header["layers.1.running_var"] = nil }
        #expect(problem(edited, restoreInto: trainer)?.contains("tensor layers.1.running_var is missing") == true)
    }

    @Test func shapeThatDisagreesWithTheModel() throws {
        let (bytes, trainer) = try good()
        // layers.0.weight is [4, 1, 3, 3]: claim [2, 2, 3, 3] (same byte count).
        let edited = try editHeader(bytes) { header in
            var entry = header["layers.0.weight"] as! [String: Any]
            entry["shape"] = [2, 2, 3, 3]
            header["layers.0.weight"] = entry
        }
        #expect(problem(edited, restoreInto: trainer)?.contains("tensor layers.0.weight has shape [2, 2, 3, 3], the model needs [4, 1, 3, 3]") == true)
    }

    /// A 1 GB file that is not a checkpoint (sparse here) is refused from its header, before its
    /// data section would be read into memory.
    @Test func aLargeFileThatIsNotACheckpointIsRefusedFromItsHeader() throws {
        let dir = ScratchDir()
        let path = dir.path + "/big.bin"
        let header = Array("{\"__metadata__\":{}}    ".utf8)
        var bytes = [UInt8](repeating: 0, count: 8) + header
        bytes[0] = UInt8(header.count)
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        #expect(truncate(path, 1 << 30) == 0)
        let error = #expect(throws: CheckpointError.self) { _ = try Safetensors.readFile(path) }
        #expect(error?.description == "\(path): \((1 << 30) - 8 - header.count) unexpected bytes after the last tensor")
        var absurd = [UInt8](repeating: 0x78, count: 64)   // "xxxxxxxx…": a header length of 8.7e18
        _ = FileManager.default.createFile(atPath: path, contents: Data(absurd))
        #expect(truncate(path, 1 << 30) == 0)
        absurd = []
        let second = #expect(throws: CheckpointError.self) { _ = try Safetensors.readFile(path) }
        #expect(second?.description.contains("header length 8680820740569200760 bytes is absurd") == true)
    }

    /// A model of another shape (12x10 images, 3 named classes) comes back with its input, class
    /// count and names; a checkpoint without them (written before) reads as MNIST's.
    @Test func aCheckpointRecordsTheInputShapeClassesAndNames() throws {
        var images = [UInt8](), labels = [UInt8]()
        for i in 0..<48 { labels.append(UInt8(i % 3)); images += (0..<120).map { UInt8(truncatingIfNeeded: $0 * (i % 3 + 1)) } }
        let spec = try ModelSpec.named("conv4k3p1-relu-pool2-flatten-dense3", input: Shape(channels: 1, height: 12, width: 10), classes: 3)
        let config = TrainingConfiguration(model: spec, epochs: 1, batchSize: 16,
                                           learningRate: 1e-2, schedule: .constant, seed: 2)
        let t = try Trainer(configuration: config, train: Dataset(images: images, labels: labels, height: 12, width: 10, classCount: 3))
        t.dataMetadata = [("data_set", "unknown set"), ("class_names", "circle\nsquare\nT-shirt/top")]
        let metadata = try t.checkpointMetadata(extra: [])
        #expect(metadata["input_shape"] == "1x12x10" && metadata["classes"] == "3")
        let dir = ScratchDir()
        let path = dir.path + "/shaped.safetensors"
        _ = FileManager.default.createFile(atPath: path, contents: Data(try Safetensors.encode(t.checkpointTensors(), metadata: metadata)))
        let model = try TrainedModel(checkpoint: path)
        #expect(model.input == Shape(channels: 1, height: 12, width: 10) && model.network.classes == 3)
        #expect(model.classNames == ["circle", "square", "T-shirt/top"])

        let (bytes, _) = try good()
        let old = try editHeader(bytes) { header in
            var meta = header["__metadata__"] as! [String: String]
            for key in ["input_shape", "classes", "class_names", "data_set"] { meta[key] = nil }
            header["__metadata__"] = meta
        }
        let oldPath = dir.path + "/old.safetensors"
        _ = FileManager.default.createFile(atPath: oldPath, contents: Data(old))
        let mnist = try TrainedModel(checkpoint: oldPath)
        #expect(mnist.input == ModelSpec.mnistInput && mnist.classNames == (0..<10).map(String.init))
    }

    /// What `inspect`, `evaluate` and `predict` rebuild (TrainedModel) refuses: a tensor the spec
    /// needs missing or of another shape, a spec that does not parse, non-finite weights.
    @Test func aTrainedModelIsRefusedWhatItCannotUse() throws {
        let (bytes, _) = try good()
        let dir = ScratchDir()
        func refusal(_ edited: [UInt8]) -> String {
            let path = dir.path + "/edited.safetensors"
            _ = FileManager.default.createFile(atPath: path, contents: Data(edited))
            do { _ = try TrainedModel(checkpoint: path); return "accepted" } catch { return "\(error)" }
        }
        #expect(refusal(bytes) == "accepted")
        let shape = try editHeader(bytes) { header in
            var entry = header["layers.0.weight"] as! [String: Any]
            entry["shape"] = [2, 2, 3, 3]
            header["layers.0.weight"] = entry
        }
        #expect(refusal(shape).contains("tensor layers.0.weight has shape [2, 2, 3, 3], the model needs [4, 1, 3, 3]"))
        let renamed = try editHeader(bytes) { header in
            header["layers.0.weightX"] = header["layers.0.weight"]
            header["layers.0.weight"] = nil
        }
        #expect(refusal(renamed).contains("tensor layers.0.weight is missing"))
        for spec in ["conv4k3p1-nonsense-dense10", "conv9223372036854775807k1-flatten-dense10", "flatten-dense4000000000-dense10"] {
            let nonsense = try editHeader(bytes) { header in
                var meta = header["__metadata__"] as! [String: String]
                meta["model"] = spec
                header["__metadata__"] = meta
            }
            #expect(refusal(nonsense).contains("model spec '\(spec)'"), "\(refusal(nonsense))")
        }
        // A NaN weight with valid checksums (as a diverged run would once have saved).
        let n = headerLength(bytes)
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        let start = ((header["layers.0.weight"] as! [String: Any])["data_offsets"] as! [Int])[0]
        var data = Array(bytes[(8 + n)...])
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { for i in 0..<4 { data[start + i] = $0[i] } }
        var poisoned = Array(bytes[0..<(8 + n)]) + data
        poisoned = try editHeader(poisoned) { header in
            var meta = header["__metadata__"] as! [String: String]
            meta["tensor_sha256"] = SHA256.hex(data)
            header["__metadata__"] = meta
        }
        #expect(refusal(poisoned).contains("tensor layers.0.weight holds 1 NaN or infinite value"))
    }

    @Test func anotherFormatVersion() throws {
        let (bytes, _) = try good()
        let edited = try editHeader(bytes) { header in
            var meta = header["__metadata__"] as! [String: String]
            meta["format_version"] = "2"
            header["__metadata__"] = meta
        }
        let dir = ScratchDir()
        let path = dir.path + "/v2.safetensors"
        _ = FileManager.default.createFile(atPath: path, contents: Data(edited))
        let error = #expect(throws: CheckpointError.self) { try CheckpointStore.read(path) }
        #expect(error?.description == "\(path): format version 2; this digits reads version 1")
    }

    @Test func newestCorruptFallsBackToThePreviousGoodOneAndTemporaryFilesAreIgnored() throws {
        let dir = ScratchDir()
        let store = try CheckpointStore(directory: dir.path, keep: 5)
        let (bytes, _) = try good()
        try store.save(bytes, step: 10)
        var corrupt = bytes
        corrupt[corrupt.count - 3] ^= 1
        try store.save(corrupt, step: 20)
        // A write that died before its rename leaves only a temporary file.
        _ = FileManager.default.createFile(atPath: dir.path + "/.tmp-999-step-00000030.safetensors", contents: Data(bytes.prefix(100)))
        let found = try #require(store.newestGood())
        #expect(found.path.hasSuffix("step-00000010.safetensors"))
        #expect(found.warnings.count == 1 && found.warnings[0].contains("step-00000020.safetensors: tensor checksum mismatch"))
        #expect(store.checkpoints().count == 2)
    }

    @Test func keepsOnlyTheNewestK() throws {
        let dir = ScratchDir()
        let store = try CheckpointStore(directory: dir.path, keep: 2)
        let (bytes, _) = try good()
        for step in [5, 10, 15, 20] { try store.save(bytes, step: step) }
        #expect(store.checkpoints().map { ($0 as NSString).lastPathComponent } == ["step-00000020.safetensors", "step-00000015.safetensors"])
        #expect(try String(contentsOfFile: dir.path + "/latest", encoding: .utf8) == "step-00000020.safetensors\n")
    }
}

final class ScratchDir {
    let path = NSTemporaryDirectory() + "digits-ck-" + UUID().uuidString
    init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct ResizeTests {
    final class Log: @unchecked Sendable {
        private let lock = NSLock()
        private var ids = [Int32]()
        func add(_ epoch: Int, _ batch: [Int32]) { if epoch == 0 { lock.lock(); ids += batch; lock.unlock() } }
        var all: [Int32] { lock.lock(); defer { lock.unlock() }; return ids }
    }

    @Test(arguments: [DataPlacement.replicate, DataPlacement.shard])
    func anEpochInterruptedOnTwoRanksFinishesOnThreeWithoutReusingASample(placement: DataPlacement) throws {
        let config = TrainingConfiguration(model: try ModelSpec(parsing: "conv2k3-relu-pool2-flatten-dense10"), epochs: 1, batchSize: 8,
                                           optimizer: .sgd(momentum: 0.9, nesterov: false), learningRate: 0.01, seed: 3, placement: placement)
        let full = DataParallelTests.synthetic
        let log = Log()
        @Sendable func data(_ rank: Int, _ world: Int) throws -> Dataset {
            guard placement == .shard else { return full }
            let keep = Set(try ShardSpec(rank: rank, worldSize: world, seed: 3).indices(sampleCount: full.count))
            return full.keeping { keep.contains(Int32($0)) }
        }
        let saved = try LocalGroup(size: 2).run { comm -> [UInt8] in
            let t = try Trainer(configuration: config, train: try data(comm.rank, 2), communicator: comm)
            t.sampleLog = log.add
            t.stopAtStep = 10
            _ = try t.runEpoch()
            return try Safetensors.encode(t.checkpointTensors(), metadata: t.checkpointMetadata(extra: []))
        }
        let checkpoint = try Safetensors.decode(saved[0], path: "mem")
        let finished = try LocalGroup(size: 3).run { comm -> Bool in
            let t = try Trainer(configuration: config, train: try data(comm.rank, 3), communicator: comm)
            try t.restore(tensors: checkpoint.tensors, metadata: checkpoint.metadata, path: "mem")
            t.sampleLog = log.add
            _ = try t.runEpoch()
            return t.isFinished
        }
        #expect(finished == [true, true, true])
        let used = log.all
        #expect(Set(used).count == used.count, "a sample was used twice")
        #expect(used.count > full.count - 3 * 8 * 2, "\(used.count) of \(full.count) used")
    }
}
