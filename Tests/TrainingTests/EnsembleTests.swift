import Datasets
import Foundation
import NeuralNet
import Testing
@testable import Training

/// Ensembles and test-time augmentation (`Ensemble`): one member and one identity view is the model
/// to the bit, members and views average exactly, a view is the warp it names, and members that
/// disagree on their images or classes are refused with the checkpoint named.
@Suite struct EnsembleTests {
    static let model = "conv4k3p1-bn-relu-pool2-flatten-dense10"

    /// A checkpoint of an untrained network (its initialisation drawn from `seed`), written into `dir`.
    static func checkpoint(seed: UInt64, in dir: ScratchDir, name: String, model: String = EnsembleTests.model,
                           input: Shape = ModelSpec.mnistInput, classes: Int = 10, classNames: [String]? = nil) throws -> String {
        let spec = try ModelSpec.named(model, input: input, classes: classes)
        let config = TrainingConfiguration(model: spec, epochs: 1, batchSize: 16, learningRate: 1e-3, schedule: .constant, seed: seed)
        var images = [UInt8](), labels = [UInt8]()
        for i in 0..<32 {
            labels.append(UInt8(i % classes))
            images += (0..<(input.height * input.width)).map { UInt8(truncatingIfNeeded: $0 * 7 + i) }
        }
        let trainer = try Trainer(configuration: config, train: Dataset(images: images, labels: labels, height: input.height,
                                                                        width: input.width, classCount: classes))
        if let classNames { trainer.dataMetadata = [("class_names", classNames.joined(separator: "\n"))] }
        let path = dir.path + "/" + name + ".safetensors"
        let bytes = try Safetensors.encode(trainer.checkpointTensors(), metadata: try trainer.checkpointMetadata(extra: []))
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    /// 40 digit-like images of the synthetic set: a bright column per class on a textured background.
    static let images = DataParallelTests.synthetic.keeping { $0 < 40 }

    /// The model's own probabilities for `images`, through the path evaluate took before ensembles.
    static func plainProbabilities(_ model: TrainedModel, _ set: Dataset = images) -> [Float] {
        let assembler = BatchAssembler(dataset: set, capacity: set.count)
        assembler.assemble(range: 0..<set.count)
        return model.probabilities(assembler.input.pointer, batch: set.count).flatMap { $0 }
    }

    static func ensembleProbabilities(_ ensemble: Ensemble, _ set: Dataset = images) -> EnsembleProbabilities {
        set.images.withUnsafeBufferPointer { ensemble.probabilities(ofPixels: $0.baseAddress!, batch: set.count) }
    }

    /// The first index where two arrays differ (or where one ends), nil when they are equal bit for bit.
    static func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
        if let i = (0..<min(a.count, b.count)).first(where: { a[$0].bitPattern != b[$0].bitPattern }) { return i }
        return a.count == b.count ? nil : min(a.count, b.count)
    }

    @Test func anEnsembleOfOneIsTheModelToTheBit() throws {
        let dir = ScratchDir()
        let model = try TrainedModel(checkpoint: try Self.checkpoint(seed: 1, in: dir, name: "a"))
        let ensemble = try Ensemble(members: [model])
        #expect(ensemble.isSingleModel)
        let plain = Self.plainProbabilities(model)
        let result = Self.ensembleProbabilities(ensemble)
        #expect(Self.firstDifference(result.mean, plain) == nil && result.members.count == 1 && Self.firstDifference(result.members[0], plain) == nil)

        // evaluate's counts: the same confusion, loss and misses as ClassificationReport.run.
        let before = ClassificationReport.run(model, on: Self.images, batchSize: 16)
        let after = EnsembleReport.run(ensemble, on: Self.images, batchSize: 16)
        #expect(after.ensemble.confusion == before.confusion && after.ensemble.lossSum == before.lossSum)
        #expect(after.ensemble.misses.map(\.id) == before.misses.map(\.id)
                && after.ensemble.misses.map(\.confidence) == before.misses.map(\.confidence))
        #expect(after.members.count == 1 && after.members[0].confusion == before.confusion && after.members[0].misses.isEmpty)
    }

    @Test func twoMembersAverageExactlyTheMeanOfTheirProbabilities() throws {
        let dir = ScratchDir()
        let a = try TrainedModel(checkpoint: try Self.checkpoint(seed: 1, in: dir, name: "a"))
        let b = try TrainedModel(checkpoint: try Self.checkpoint(seed: 2, in: dir, name: "b",
                                                                 model: "conv6k5p2-relu-pool2-flatten-dense10"))
        let pa = Self.plainProbabilities(a), pb = Self.plainProbabilities(b)
        #expect(zip(pa, pb).contains { $0 != $1 }, "two initialisations should not agree everywhere")
        let result = Self.ensembleProbabilities(try Ensemble(members: [a, b]))
        #expect(result.members.count == 2 && Self.firstDifference(result.members[0], pa) == nil && Self.firstDifference(result.members[1], pb) == nil)
        #expect(Self.firstDifference(result.mean, zip(pa, pb).map { ($0 + $1) / 2 }) == nil)
        // Each row is still a distribution.
        for n in 0..<Self.images.count { #expect(abs(result.row(n).reduce(0, +) - 1) < 1e-5) }

        // The report counts the average's argmax, and each member's own.
        let report = EnsembleReport.run(try Ensemble(members: [a, b]), on: Self.images)
        func argmax(_ p: [Float], _ n: Int) -> Int {   // the first largest, as evaluate counts
            var best = 0
            for k in 1..<10 where p[n * 10 + k] > p[n * 10 + best] { best = k }
            return best
        }
        let labels = Self.images.labels.map(Int.init)
        #expect(report.ensemble.correct == (0..<labels.count).filter { argmax(result.mean, $0) == labels[$0] }.count)
        #expect(report.members[1].correct == (0..<labels.count).filter { argmax(pb, $0) == labels[$0] }.count)
        #expect(report.ensemble.count == 40 && report.members.allSatisfy { $0.count == 40 })
    }

    @Test func anIdentityViewReproducesThePlainProbabilities() throws {
        let dir = ScratchDir()
        let model = try TrainedModel(checkpoint: try Self.checkpoint(seed: 3, in: dir, name: "a"))
        let plain = Self.plainProbabilities(model)
        // Twice the image itself, averaged: (p + p) / 2 is p exactly.
        let twice = Self.ensembleProbabilities(try Ensemble(members: [model], views: [.identity, TestTimeView(shiftX: 0, shiftY: 0)]))
        #expect(Self.firstDifference(twice.mean, plain) == nil)
        // A view that is not the identity changes the answer (the test above could not pass by ignoring views).
        let shifted = Self.ensembleProbabilities(try Ensemble(members: [model], views: [.shift(x: 1, y: 0)]))
        #expect(Self.firstDifference(shifted.mean, plain) != nil)
    }

    @Test func aOnePixelShiftViewIsTheImageMovedByOnePixel() throws {
        let dir = ScratchDir()
        let model = try TrainedModel(checkpoint: try Self.checkpoint(seed: 4, in: dir, name: "a"))
        let set = Self.images
        // Moved right by one pixel and down by one, by hand, with zeros coming in at the left and top.
        var moved = [UInt8](repeating: 0, count: set.images.count)
        for n in 0..<set.count { for y in 1..<28 { for x in 1..<28 { moved[n * 784 + y * 28 + x] = set.images[n * 784 + (y - 1) * 28 + x - 1] } } }
        let movedSet = Dataset(images: moved, labels: set.labels, height: 28, width: 28)
        let view = Self.ensembleProbabilities(try Ensemble(members: [model], views: [.shift(x: 1, y: 1)]))
        #expect(Self.firstDifference(view.mean, Self.plainProbabilities(model, movedSet)) == nil)

        // Members x views: the mean over members of each member's mean over its views.
        let other = try TrainedModel(checkpoint: try Self.checkpoint(seed: 5, in: dir, name: "b"))
        let both = Self.ensembleProbabilities(try Ensemble(members: [model, other], views: [.identity, .shift(x: 1, y: 1)]))
        let a = zip(Self.plainProbabilities(model), Self.plainProbabilities(model, movedSet)).map { ($0 + $1) / 2 }
        let b = zip(Self.plainProbabilities(other), Self.plainProbabilities(other, movedSet)).map { ($0 + $1) / 2 }
        #expect(Self.firstDifference(both.members[0], a) == nil && Self.firstDifference(both.members[1], b) == nil)
        #expect(Self.firstDifference(both.mean, zip(a, b).map { ($0 + $1) / 2 }) == nil)
    }

    @Test func everyNamedViewSetStartsWithTheImageAndIsSmall() {
        for set in TestTimeViewSet.allCases {
            #expect(set.views.first == .identity && (3...5).contains(set.views.count) && Set(set.views.map(\.description)).count == set.views.count)
        }
        #expect(TestTimeViewSet.shifts.views.map(\.description) == ["identity", "shift +1,0", "shift -1,0", "shift 0,+1", "shift 0,-1"])
        #expect(TestTimeViewSet.standard.views.map(\.description) == ["identity", "scale 0.9", "scale 1.1"])
        #expect(TestTimeView.rotation(degrees: -8).description == "rotate -8" && TestTimeView.scaling(1.1).description == "scale 1.1")
    }

    @Test func membersThatDisagreeAreRefusedWithTheCheckpointNamed() throws {
        let dir = ScratchDir()
        let mnist = try Self.checkpoint(seed: 1, in: dir, name: "mnist")
        let small = try Self.checkpoint(seed: 1, in: dir, name: "small", model: "conv4k3p1-relu-pool2-flatten-dense10",
                                        input: Shape(channels: 1, height: 12, width: 10))
        let three = try Self.checkpoint(seed: 1, in: dir, name: "three", model: "conv4k3p1-relu-pool2-flatten-dense3", classes: 3)
        let letters = try Self.checkpoint(seed: 2, in: dir, name: "letters",
                                          classNames: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "nine"])

        func refusal(_ paths: [String]) -> EnsembleError? {
            do { _ = try Ensemble(checkpoints: paths); return nil } catch { return error as? EnsembleError }
        }
        let shape = refusal([mnist, small])
        #expect(shape?.checkpoint == small)
        #expect(shape?.description.hasPrefix(small + ": takes 1x12x10 images, but " + mnist + " (the first checkpoint) takes 1x28x28") == true)
        let count = refusal([mnist, three])
        #expect(count?.checkpoint == three && count?.description.contains("has 3 classes, but \(mnist) (the first checkpoint) has 10") == true)
        let names = refusal([mnist, mnist, letters])
        #expect(names?.checkpoint == letters && names?.description.contains("names class 9 'nine', but \(mnist) (the first checkpoint) names it '9'") == true)
        // The same members in agreeing order are accepted.
        #expect(try Ensemble(checkpoints: [mnist, try Self.checkpoint(seed: 9, in: dir, name: "other")]).members.count == 2)
        #expect(throws: EnsembleError.self) { _ = try Ensemble(members: []) }
    }
}
