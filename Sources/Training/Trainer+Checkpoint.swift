import Collective
import CounterRNG
import Datasets
import NeuralNet

/// Checkpoints of a trainer: what they hold, and restoring from one (same or another world size).
extension Trainer {


    /// Scales and per-rank buffers carry over only to the same world size (another size sums other values).
    func oldWorldForScales(_ metadata: [String: String]) -> Int { metadata["world_size"].flatMap { Int($0) } ?? 0 }

    static let rankBuffersTensorName = "ranks.buffers"

    /// Tensors of a checkpoint: parameters, and buffers by layer name (BatchNorm running statistics
    /// as the mean over ranks, what evaluation uses), optimizer state per parameter. Collective: every
    /// rank calls it at the same step. Under several ranks each rank's own buffers are saved as well
    /// (`ranks.buffers`, (ranks, bufferCount)), and no rank's live buffers change: so a checkpoint
    /// written at any step leaves the run as it was, and a resume on the same world size continues
    /// bit for bit as if never stopped.
    public func checkpointTensors() throws -> [StoredTensor] {
        let store = network.store
        var tensors = [StoredTensor]()
        for entry in store.parameterEntries {
            tensors.append(StoredTensor(name: entry.name, shape: entry.shape,
                                        values: Array(UnsafeBufferPointer(start: store.parameters + entry.slice.offset, count: entry.slice.count))))
        }
        var buffers = Array(store.bufferBuffer)
        if communicator.size > 1 && store.bufferCount > 0 {
            let perRank = try communicator.allgather(buffers.withUnsafeBytes { Array($0) }).map { bytes in
                bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            guard perRank.allSatisfy({ $0.count == store.bufferCount }) else {
                throw CheckpointError("<checkpoint>", "the ranks hold different numbers of buffer values")
            }
            // The mean in rank order, as `synchronizeBuffers` computes it.
            var sums = perRank[0]
            for r in 1..<perRank.count { for i in 0..<sums.count { sums[i] += perRank[r][i] } }
            let scale = 1 / Float(communicator.size)
            buffers = sums.map { $0 * scale }
            tensors.append(StoredTensor(name: Trainer.rankBuffersTensorName, shape: [communicator.size, store.bufferCount],
                                        values: perRank.flatMap { $0 }))
        }
        guard allFinite(buffers, buffers.count) else {
            throw TrainingDiverged(step: globalStep, what: "the BatchNorm running statistics", learningRate: schedule.rate(at: samplesConsumed / scheduleBatch))
        }
        for entry in store.bufferEntries {
            tensors.append(StoredTensor(name: entry.name, shape: entry.shape,
                                        values: Array(buffers[entry.slice.offset..<(entry.slice.offset + entry.slice.count)])))
        }
        for (stateName, buffer) in optimizer.stateTensors {
            for entry in store.parameterEntries {
                tensors.append(StoredTensor(name: stateName + "." + entry.name, shape: entry.shape,
                                            values: Array(UnsafeBufferPointer(start: buffer.pointer + entry.slice.offset, count: entry.slice.count))))
            }
        }
        if let average {
            // The average's statistics are those of the last recalibration (each epoch end).
            let prefix = WeightAverage.tensorPrefix
            for entry in store.parameterEntries {
                tensors.append(StoredTensor(name: prefix + entry.name, shape: entry.shape,
                                            values: Array(average.parameters[entry.slice.offset..<(entry.slice.offset + entry.slice.count)])))
            }
            for entry in store.bufferEntries {
                tensors.append(StoredTensor(name: prefix + entry.name, shape: entry.shape,
                                            values: Array(average.buffers[entry.slice.offset..<(entry.slice.offset + entry.slice.count)])))
            }
        }
        if let state = exchange.compressorState {
            // So a resumed run compresses its first step exactly as the uninterrupted run would.
            tensors.append(StoredTensor(name: state.name, shape: [state.values.count], values: state.values))
        }
        return tensors
    }

    /// Everything a checkpoint must hold besides tensors. Collective: every rank calls it at the same step.
    public func checkpointMetadata(extra: [(String, String)]) throws -> [String: String] {
        let perRank = try communicator.allgather(Array(exactString(localSums).utf8)).map { String(decoding: $0, as: UTF8.self) }
        let input = configuration.model.input
        var metadata: [String: String] = [
            "format_version": CheckpointStore.formatVersion,
            "train_data_sha256": train.imagesSHA256 + "/" + train.labelsSHA256,
            "model": configuration.model.description,
            "input_shape": "\(input.channels)x\(input.height)x\(input.width)",
            "classes": String(configuration.model.classes),
            "epoch": String(epoch),
            "step_in_epoch": String(stepInEpoch),
            "global_step": String(globalStep),
            "samples_consumed": String(samplesConsumed),
            "schedule_batch": String(scheduleBatch),
            "schedule_total_steps": String(schedule.totalSteps),
            "world_size": String(communicator.size),
            "batch_size_per_rank": String(configuration.batchSize),
            "optimizer_steps": String(optimizer.stepCount),
            "epoch_sums_per_rank": perRank.joined(separator: ";"),
            "parameter_count": String(network.parameterCount),
        ]
        if let average {
            metadata["ema_updates"] = String(average.updates)
            metadata["selected_weights"] = preferAverage ? "ema" : "raw"
        }
        if let resumedFrom {
            metadata["epoch_remainder_of_world"] = String(resumedFrom.world)
            metadata["epoch_remainder_after_steps"] = String(resumedFrom.steps)
        }
        for (name, value) in configuration.fields { metadata["config." + name] = value }
        for (name, value) in dataMetadata + extra { metadata[name] = value }
        return metadata
    }

    /// Restores tensors and position from a verified checkpoint. Every name, shape and
    /// hyperparameter must fit this run; a different world size is allowed (see `resumeOrder`).
    public func restore(tensors: [StoredTensor], metadata: [String: String], path: String) throws {
        try checkFits(metadata, path: path)
        try copyTensors(tensors, metadata: metadata, path: path)
        try restorePosition(metadata, path: path)
    }

    /// The checkpoint's data, model and every hyperparameter a resume may not change are this run's.
    func checkFits(_ metadata: [String: String], path: String) throws {
        func need(_ key: String) throws -> String {
            guard let v = metadata[key] else { throw CheckpointError(path, "metadata has no \(key)") }
            return v
        }
        let dataDigest = train.imagesSHA256 + "/" + train.labelsSHA256
        let stored = try need("train_data_sha256")
        if stored != dataDigest {
            throw CheckpointError(path, "was trained on data with checksums \(stored); this run reads \(dataDigest)")
        }
        let model = try need("model")
        guard model == configuration.model.description else {
            throw CheckpointError(path, "holds model '\(model)', but this run builds '\(configuration.model.description)'")
        }
        for (key, value) in dataMetadata {
            if let stored = metadata[key], stored != value {
                throw CheckpointError(path, "was trained on data with \(key) '\(stored)', this run reads '\(value)'")
            }
        }
        for (name, value) in configuration.fields where !TrainingConfiguration.changeableOnResume.contains(name) {
            let stored = try metadata["config." + name] ?? TrainingConfiguration.valuesBeforeFieldExisted[name] ?? need("config." + name)
            if stored != value { throw CheckpointError(path, "was trained with \(name) '\(stored)', this run has '\(value)'") }
        }
    }

    /// Parameters, buffers, optimizer state (and, on the same world size, the fp16 scales and each
    /// rank's own buffers) into the arenas; every tensor named and shaped as the model needs.
    func copyTensors(_ tensors: [StoredTensor], metadata: [String: String], path: String) throws {
        var byName = [String: StoredTensor]()
        for t in tensors { byName[t.name] = t }
        let store = network.store
        func copy(_ name: String, _ shape: [Int], into target: UnsafeMutablePointer<Float>) throws {
            try copyStoredTensor(name, shape: shape, from: byName, into: target, path: path)
        }
        for e in store.parameterEntries { try copy(e.name, e.shape, into: store.mutableParameters() + e.slice.offset) }
        for e in store.bufferEntries { try copy(e.name, e.shape, into: store.buffers + e.slice.offset) }
        for (stateName, buffer) in optimizer.stateTensors {
            for e in store.parameterEntries { try copy(stateName + "." + e.name, e.shape, into: buffer.pointer + e.slice.offset) }
        }
        if let average {
            let prefix = WeightAverage.tensorPrefix
            try average.parameters.withUnsafeMutableBufferPointer { values in
                for e in store.parameterEntries { try copy(prefix + e.name, e.shape, into: values.baseAddress! + e.slice.offset) }
            }
            try average.buffers.withUnsafeMutableBufferPointer { values in
                for e in store.bufferEntries { try copy(prefix + e.name, e.shape, into: values.baseAddress! + e.slice.offset) }
            }
            guard let updates = metadata["ema_updates"].flatMap({ Int($0) }), updates >= 0 else {
                throw CheckpointError(path, "holds a weight average but no valid ema_updates in its metadata")
            }
            average.updates = updates
            preferAverage = metadata["selected_weights"] != "raw"
        }
        if communicator.size == oldWorldForScales(metadata) { exchange.restoreCompressorState(from: byName) }
        // On the same world size each rank takes back its own running statistics (see checkpointTensors).
        if let perRank = byName[Trainer.rankBuffersTensorName], communicator.size == oldWorldForScales(metadata) {
            guard perRank.shape == [communicator.size, store.bufferCount] else {
                throw CheckpointError(path, "tensor \(Trainer.rankBuffersTensorName) has shape \(perRank.shape), this run needs \([communicator.size, store.bufferCount])")
            }
            perRank.values.withUnsafeBufferPointer {
                store.buffers.update(from: $0.baseAddress! + communicator.rank * store.bufferCount, count: store.bufferCount)
            }
        }
    }

    /// Where the run stood: steps, epoch, samples, schedule, the epoch's running sums, and the plan
    /// of an epoch interrupted on another world size.
    func restorePosition(_ metadata: [String: String], path: String) throws {
        func need(_ key: String) throws -> String {
            guard let v = metadata[key] else { throw CheckpointError(path, "metadata has no \(key)") }
            return v
        }
        guard let steps = Int(try need("optimizer_steps")), let step = Int(try need("global_step")),
              let oldWorld = Int(try need("world_size")), let savedEpoch = Int(try need("epoch")),
              let savedStepInEpoch = Int(try need("step_in_epoch")), let consumed = Int(try need("samples_consumed")),
              let savedScheduleBatch = Int(try need("schedule_batch")), let savedTotal = Int(try need("schedule_total_steps")),
              oldWorld > 0, savedScheduleBatch > 0 else {
            throw CheckpointError(path, "metadata has a malformed step count")
        }
        let sums = try need("epoch_sums_per_rank").split(separator: ";").map { exactDoubles(String($0)) }
        guard sums.count == oldWorld, sums.allSatisfy({ $0?.count == 3 }) else {
            throw CheckpointError(path, "metadata epoch_sums_per_rank does not match world size \(oldWorld)")
        }
        optimizer.stepCount = steps
        globalStep = step
        epoch = savedEpoch
        stepInEpoch = savedStepInEpoch
        samplesConsumed = consumed
        scheduleBatch = savedScheduleBatch
        schedule = LearningRateSchedule(kind: schedule.kind, peak: schedule.peak, warmupSteps: schedule.warmupSteps, totalSteps: savedTotal)
        let remainderWorld = metadata["epoch_remainder_of_world"].flatMap { Int($0) }
        let remainderSteps = metadata["epoch_remainder_after_steps"].flatMap { Int($0) }
        if oldWorld == communicator.size {
            localSums = sums[communicator.rank]!
            if let remainderWorld, let remainderSteps {
                resumedPlan = try remainderPlan(oldWorld: remainderWorld, epoch: savedEpoch, stepsTaken: remainderSteps)
                resumedFrom = (remainderWorld, remainderSteps)
            }
        } else if remainderWorld != nil && savedStepInEpoch > 0 {
            throw CheckpointError(path, "was taken inside an epoch that had itself been resumed on another world size; "
                                  + "resume it on \(oldWorld) rank(s), or from a checkpoint at an epoch boundary")
        } else {
            // The epoch's totals so far travel on rank 0; the other ranks start from zero.
            let totals = sums.reduce([0.0, 0.0, 0.0]) { acc, s in zip(acc, s!).map { $0 + $1 } }
            localSums = communicator.isRoot ? totals : [0, 0, 0]
            if savedStepInEpoch > 0 {
                resumedPlan = try remainderPlan(oldWorld: oldWorld, epoch: savedEpoch, stepsTaken: savedStepInEpoch)
                resumedFrom = (oldWorld, savedStepInEpoch)
                stepInEpoch = 0
            }
        }
    }

    /// The rest of an interrupted epoch on a new world size: exactly the samples the old ranks
    /// had not yet used, dealt to the new ranks; each new rank uses only the ones in its own
    /// data, and all take the same number of steps (the few that do not fill a step are left
    /// for the next epoch). No sample is used twice in the epoch.
    func remainderPlan(oldWorld: Int, epoch: Int, stepsTaken: Int) throws -> EpochPlan {
        let total = train.totalCount, b = configuration.batchSize, seed = configuration.seed
        let newWorld = communicator.size
        switch configuration.placement {
        case .replicate:
            // One permutation for the epoch; the old world used its first stepsTaken·oldWorld·b positions.
            let order = keyedPermutation(count: total, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64.max)
            let used = stepsTaken * oldWorld * b
            let steps = (total - used) / (newWorld * b)
            return EpochPlan(order: order, steps: steps, start: used + communicator.rank * b, stride: newWorld * b, batchSize: b)
        case .shard:
            // The file ids a shard holds: dealt from every record, or from those not held out for validation.
            func shardIDs(rank: Int, worldSize: Int) throws -> [Int32] {
                let spec = ShardSpec(rank: rank, worldSize: worldSize, seed: seed)
                return try recordIDs.map { try spec.share(of: $0) } ?? spec.indices(sampleCount: total)
            }
            var consumed = [Bool](repeating: false, count: recordIDs?.last.map { Int($0) + 1 } ?? total)
            for r in 0..<oldWorld {
                let ids = try shardIDs(rank: r, worldSize: oldWorld)
                let order = keyedPermutation(count: ids.count, seed: seed, purpose: .epochShuffle, UInt64(epoch), UInt64(r))
                for position in 0..<min(order.count, stepsTaken * b) { consumed[Int(ids[Int(order[position])])] = true }
            }
            // Remaining counts of every new rank decide the common step count.
            var fewest = Int.max
            for r in 0..<newWorld {
                let ids = try shardIDs(rank: r, worldSize: newWorld)
                fewest = min(fewest, ids.reduce(0) { $0 + (consumed[Int($1)] ? 0 : 1) })
            }
            // This rank's remaining local indices, in a fresh order keyed by (seed, epoch, rank, old world).
            var remaining = [Int32]()
            for (local, id) in train.ids.enumerated() where !consumed[Int(id)] { remaining.append(Int32(local)) }
            let shuffle = keyedPermutation(count: remaining.count, seed: seed, purpose: .epochShuffle, UInt64(epoch),
                                           UInt64(communicator.rank) | (UInt64(oldWorld) << 32))
            let order = shuffle.map { remaining[Int($0)] }
            return EpochPlan(order: order, steps: fewest / b, start: 0, stride: b, batchSize: b)
        }
    }
}
