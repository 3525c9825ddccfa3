import Foundation
import Testing
@testable import Datasets

@Suite struct ValidationSplitTests {
    @Test func splitIsDisjointCompleteAndKeyedBySeed() throws {
        let split = ValidationSplit(size: .records(120), seed: 3)
        let (train, validation) = try split.split(total: 1000, path: "labels")
        #expect(validation.count == 120 && train.count == 880)
        #expect(Set(train).isDisjoint(with: Set(validation)))
        #expect(Set(train + validation) == Set((0..<1000).map { Int32($0) }))
        #expect(train == train.sorted() && validation == validation.sorted())
        #expect(try split.split(total: 1000, path: "labels").validation == validation)
        #expect(try ValidationSplit(size: .records(120), seed: 4).split(total: 1000, path: "labels").validation != validation)
        // Not the first or last records: a random choice over the whole file.
        #expect(validation.first! < 100 && validation.last! > 900)
        #expect(ValidationSplit(size: .automatic, seed: 1).heldOutCount(total: 60000) == 5000)
    }

    @Test func aSplitThatLeavesNothingToTrainOnIsRefusedNamingTheFile() {
        #expect(throws: DatasetError.self) { try ValidationSplit(size: .records(10), seed: 1).split(total: 10, path: "x/labels") }
        do {
            _ = try ValidationSplit(size: .records(10), seed: 1).split(total: 10, path: "x/labels")
        } catch {
            #expect("\(error)".contains("x/labels") && "\(error)".contains("--validation"))
        }
    }

    /// Every rank reads its share of the records trained on and of those held out: over the ranks
    /// each appears once, the held-out ones never in a training shard, for any world size.
    @Test(arguments: [1, 2, 3])
    func shardsOfEachPartCoverItOnce(worldSize: Int) throws {
        let dir = ScratchDirectory()
        let count = 60
        _ = dir.write("train-images-idx3-ubyte", imageFile(count: count, height: 4, width: 4) { i, _ in UInt8(i) })
        _ = dir.write("train-labels-idx1-ubyte", labelFile((0..<count).map { UInt8($0 % 3) }))
        _ = dir.write("t10k-images-idx3-ubyte", imageFile(count: 5, height: 4, width: 4))
        _ = dir.write("t10k-labels-idx1-ubyte", labelFile([0, 1, 2, 0, 1]))
        let split = ValidationSplit(size: .records(12), seed: 9)
        let expected = try split.split(total: count, path: "")
        var trainIDs = [Int32](), validationIDs = [Int32]()
        for rank in 0..<worldSize {
            let shard = ShardSpec(rank: rank, worldSize: worldSize, seed: 5)
            let set = try IDXSet.load(from: dir.path, train: .shard(shard), test: .skip, validation: (split, .shard(shard)))
            let train = try #require(set.train), validation = try #require(set.validation)
            #expect(train.totalCount == 48 && validation.totalCount == 12)
            // Each image's pixels are its id: the records really are the ones named.
            for (slot, id) in train.ids.enumerated() { #expect(train.images[slot * 16] == UInt8(id)) }
            for (slot, id) in validation.ids.enumerated() { #expect(validation.images[slot * 16] == UInt8(id)) }
            trainIDs += train.ids
            validationIDs += validation.ids
        }
        #expect(trainIDs.sorted() == expected.train)
        #expect(validationIDs.sorted() == expected.validation)
    }
}
