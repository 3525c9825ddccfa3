import Datasets
import Foundation
import NeuralNet
import Testing
@testable import Training

func mnistDirectory() -> String? {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    var candidates = [root + "/data/mnist", root + "/../shared/data/mnist"]
    if let env = ProcessInfo.processInfo.environment["MNIST_DIR"] { candidates.insert(env, at: 0) }
    return candidates.first { FileManager.default.fileExists(atPath: $0 + "/train-images-idx3-ubyte.gz") }
}

/// A subset of a data set: its first `count` records.
func prefix(_ set: Dataset, _ count: Int) -> Dataset {
    Dataset(images: Array(set.images[0..<(count * set.pixelsPerImage)]), labels: Array(set.labels[0..<count]),
            height: set.height, width: set.width)
}

@Suite struct EndToEndTests {
    @Test func oneEpochOnSixThousandImagesReaches95Percent() throws {
        let directory = try #require(mnistDirectory(), "MNIST not found: run scripts/fetch-mnist.sh")
        let train = prefix(try MNIST.load(.train, from: directory), 6000)
        // The whole test set: on 1,000 images one standard error is 0.7 points, as much as a change of
        // convolution algorithm moves the result (95.85% direct, 95.82% Winograd on all 10,000).
        let test = try MNIST.load(.test, from: directory)
        Kernels.useThreads(1)
        defer { Kernels.useThreads(nil) }
        let configuration = TrainingConfiguration(model: try ModelSpec.named("default"), epochs: 1, batchSize: 32,
                                                  optimizer: .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8),
                                                  learningRate: 2e-3, schedule: .oneCycle(rise: 0.25), seed: 1)
        let trainer = try Trainer(configuration: configuration, train: train)
        let metrics = try trainer.runEpoch()
        let evaluation = Evaluation.run(trainer.network, on: test)
        #expect(metrics.step == 6000 / 32)
        #expect(evaluation.accuracy >= 0.95, "test accuracy \(evaluation.accuracy)")
    }

    @Test func samplerVisitsEachLocalSampleAtMostOncePerEpochAndReshuffles() {
        let sampler = EpochSampler(localCount: 1000, totalCount: 3000, worldSize: 3, batchSize: 64, seed: 4, rank: 1)
        #expect(sampler.stepsPerEpoch == 15)
        let a = sampler.order(epoch: 0), b = sampler.order(epoch: 1)
        #expect(Set(a).count == 1000 && a.allSatisfy { $0 >= 0 && $0 < 1000 })
        #expect(a != b)
        #expect(a == sampler.order(epoch: 0))
    }

    @Test func normalizerStandardises() {
        let n = InputNormalizer()
        #expect(abs(n.table[0] - (-0.1307 / 0.3081)) < 1e-6)
        #expect(abs(n.table[255] - ((1 - 0.1307) / 0.3081)) < 1e-6)
    }
}
