import Augmentation
import Collective
import Datasets
import NeuralNet
import Testing
@testable import Training

/// Multi-rank logic with in-process ranks (threads); the same checks run under real mpirun in scripts/test.sh.
@Suite struct DataParallelTests {
    /// A small synthetic data set: 600 noisy 28×28 images of 10 classes.
    static let synthetic: Dataset = {
        var images = [UInt8](), labels = [UInt8]()
        for i in 0..<600 {
            let label = i % 10
            labels.append(UInt8(label))
            for p in 0..<784 { images.append(UInt8(truncatingIfNeeded: (p % 28 == label * 2 ? 200 : 0) + (i * 31 + p * 7) % 50)) }
        }
        return Dataset(images: images, labels: labels, height: 28, width: 28)
    }()

    @Test(arguments: [1, 2, 3, 4])
    func shardsAndSamplersUseEverySampleAtMostOnceWithEqualSteps(worldSize: Int) throws {
        let total = 1000, batch = 16
        var used = [Int](repeating: 0, count: total)
        var steps = Set<Int>()
        for rank in 0..<worldSize {
            let ids = try ShardSpec(rank: rank, worldSize: worldSize, seed: 3).indices(sampleCount: total)
            let sampler = EpochSampler(localCount: ids.count, totalCount: total, worldSize: worldSize, batchSize: batch, seed: 3, rank: rank)
            steps.insert(sampler.stepsPerEpoch)
            let plan = sampler.plan(epoch: 2)
            for step in 0..<plan.steps {
                for local in plan.batch(step) { used[Int(ids[Int(local)])] += 1 }
            }
        }
        #expect(steps.count == 1)                                   // every rank takes the same number of steps
        #expect(used.allSatisfy { $0 <= 1 })                        // no sample twice in an epoch
        #expect(used.reduce(0, +) == steps.first! * batch * worldSize)
        #expect(used.reduce(0, +) > total - worldSize * batch)       // at most one global batch skipped
    }

    @Test func replicatedSamplingIsTheSameGlobalBatchForAnyWorldSize() {
        let one = EpochSampler(placement: .replicate, localCount: 1000, totalCount: 1000, worldSize: 1, batchSize: 64, seed: 1, rank: 0)
        let plan = one.plan(epoch: 0)
        for step in 0..<3 {
            var union = [Int32]()
            for rank in 0..<2 {
                let half = EpochSampler(placement: .replicate, localCount: 1000, totalCount: 1000, worldSize: 2, batchSize: 32, seed: 1, rank: rank)
                union += half.plan(epoch: 0).batch(step)
            }
            #expect(union == Array(plan.batch(step)))
        }
    }

    func configuration(batch: Int, placement: DataPlacement, model: String) throws -> TrainingConfiguration {
        TrainingConfiguration(model: try ModelSpec(parsing: model), epochs: 1, batchSize: batch,
                              optimizer: .sgd(momentum: 0.9, nesterov: false), learningRate: 0.02, seed: 5,
                              placement: placement, maxSteps: 8)
    }

    @Test func twoRanksOfBatch16EqualOneRankOfBatch32() throws {
        let model = "conv4k3p1-relu-pool2-flatten-dense10"
        let single = try Trainer(configuration: configuration(batch: 32, placement: .replicate, model: model), train: Self.synthetic)
        _ = try single.runEpoch()
        let expected = Array(single.network.store.parameterBuffer)
        let config = try configuration(batch: 16, placement: .replicate, model: model)
        let ranks = try LocalGroup(size: 2).run { comm -> [Float] in
            let trainer = try Trainer(configuration: config, train: Self.synthetic, communicator: comm)
            _ = try trainer.runEpoch()
            return Array(trainer.network.store.parameterBuffer)
        }
        #expect(ranks[0].map(\.bitPattern) == ranks[1].map(\.bitPattern))
        let worst = zip(ranks[0], expected).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < 1e-5, "largest difference \(worst)")
        #expect(worst > 0 || ranks[0] == expected)
    }

    @Test func ranksWithBatchNormAndDropoutStayIdenticalAndAverageRunningStatistics() throws {
        let config = try configuration(batch: 8, placement: .shard, model: "conv4k3p1-bn-relu-pool2-flatten-drop0.3-dense10")
        let digests = try LocalGroup(size: 3).run { comm -> String in
            let train = Dataset(images: Self.synthetic.images, labels: Self.synthetic.labels, height: 28, width: 28)
            let trainer = try Trainer(configuration: config, train: train, communicator: comm)
            _ = try trainer.runEpoch()
            try trainer.synchronizeBuffers()
            return trainer.weightsDigest()
        }
        #expect(Set(digests).count == 1)
    }

    @Test func aConfigurationMismatchIsNamedOnEveryRank() throws {
        let messages = try LocalGroup(size: 3).run { comm -> String in
            let fields = [("model", comm.rank == 2 ? "lenet5" : "default"), ("seed", "1")]
            do { try ConfigurationCheck.verify(fields, communicator: comm); return "no error" }
            catch { return "\(error)" }
        }
        for message in messages {
            #expect(message.contains("rank 2 differs from rank 0 in model: rank 2 has 'lenet5', rank 0 has 'default'"))
            #expect(!message.contains("rank 1"))
        }
        let agreed = try LocalGroup(size: 2).run { comm -> Bool in
            try ConfigurationCheck.verify([("model", "default")], communicator: comm); return true
        }
        #expect(agreed == [true, true])
    }
}

@Suite struct AugmentedBatchTests {
    @Test func augmentationKeepsLabelsAndDependsOnlyOnTheSampleNotTheRank() throws {
        let full = DataParallelTests.synthetic
        let settings = try AugmentationSettings(parsing: "default")
        let augmenter = Augmenter(settings: settings, seed: 9)
        // Rank view A: the whole set. Rank view B: the same samples through a pipeline in another order.
        let pipeline = BatchPipeline(dataset: full, batchSize: 4, augmenter: augmenter)
        pipeline.begin(epoch: 2, batches: [[5, 17, 3, 40], [40, 3, 17, 5]])
        let first = pipeline.next()
        let images1 = Array(UnsafeBufferPointer(start: first.input.pointer, count: 4 * 784))
        let labels1 = Array(UnsafeBufferPointer(start: first.labels, count: 4))
        let second = pipeline.next()
        let images2 = Array(UnsafeBufferPointer(start: second.input.pointer, count: 4 * 784))
        let labels2 = Array(UnsafeBufferPointer(start: second.labels, count: 4))
        pipeline.finish()
        #expect(labels1 == [5, 17, 3, 40].map { full.labels[$0] })
        #expect(labels2 == labels1.reversed())
        for slot in 0..<4 {
            #expect(Array(images1[(slot * 784)..<((slot + 1) * 784)]) == Array(images2[((3 - slot) * 784)..<((4 - slot) * 784)]))
        }
        // And it is not the plain image.
        let plain = BatchAssembler(dataset: full, capacity: 4)
        plain.assemble([5, 17, 3, 40])
        #expect(Array(UnsafeBufferPointer(start: plain.input.pointer, count: 4 * 784)) != images1)
    }

    @Test func stoppingAnEpochEarlyReleasesThePrefetchThread() throws {
        let pipeline = BatchPipeline(dataset: DataParallelTests.synthetic, batchSize: 2,
                                     augmenter: Augmenter(settings: try AugmentationSettings(parsing: "default"), seed: 1))
        for epoch in 0..<3 {
            pipeline.begin(epoch: epoch, batches: Array(repeating: [0, 1], count: 50))
            _ = pipeline.next()
            pipeline.finish()
        }
        #expect(pipeline.backgroundSeconds >= 0)
    }
}
