import Testing
@testable import Datasets

@Suite struct ShardTests {
    @Test(arguments: [1, 2, 3, 4, 7])
    func shardsCoverEveryIndexExactlyOnce(worldSize: Int) throws {
        let count = 1003
        var seen = [Int](repeating: 0, count: count)
        var sizes = [Int]()
        for rank in 0..<worldSize {
            let mine = try ShardSpec(rank: rank, worldSize: worldSize, seed: 42).indices(sampleCount: count)
            #expect(mine == mine.sorted())
            sizes.append(mine.count)
            for i in mine { seen[Int(i)] += 1 }
        }
        #expect(seen.allSatisfy { $0 == 1 })
        #expect(sizes.max()! - sizes.min()! <= 1)
    }

    @Test func shardsDependOnTheSeedAndAreReproducible() throws {
        let a = try ShardSpec(rank: 0, worldSize: 2, seed: 1).indices(sampleCount: 500)
        let b = try ShardSpec(rank: 0, worldSize: 2, seed: 1).indices(sampleCount: 500)
        let c = try ShardSpec(rank: 0, worldSize: 2, seed: 2).indices(sampleCount: 500)
        #expect(a == b)
        #expect(a != c)
        // A shard is a random half, not the first half.
        #expect(a.contains { $0 >= 250 } && a.contains { $0 < 250 })
    }

    @Test func invalidShardIsAnError() {
        #expect(throws: DatasetError.invalidShard(rank: 2, worldSize: 2, sampleCount: 10)) {
            try ShardSpec(rank: 2, worldSize: 2, seed: 0).indices(sampleCount: 10)
        }
        #expect(throws: DatasetError.self) { try ShardSpec(rank: 0, worldSize: 11, seed: 0).indices(sampleCount: 10) }
    }

    @Test func loadingAShardKeepsOnlyItsRecords() throws {
        let dir = ScratchDirectory()
        let count = 50
        let labels = (0..<count).map { UInt8($0 % 10) }
        let imagesPath = dir.write("img.gz", gzip(imageFile(count: count, pixel: { i, _ in UInt8(i) })))
        let labelsPath = dir.write("lab", labelFile(labels))
        var union = Set<Int32>()
        for rank in 0..<3 {
            let spec = ShardSpec(rank: rank, worldSize: 3, seed: 9)
            let set = try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath, shard: spec)
            #expect(set.ids == (try spec.indices(sampleCount: count)))
            #expect(set.images.count == set.count * 784)
            #expect(set.totalCount == count)
            for (slot, id) in set.ids.enumerated() {
                #expect(set.labels[slot] == labels[Int(id)])
                #expect(set.images[slot * 784] == UInt8(id) && set.images[slot * 784 + 783] == UInt8(id))
            }
            union.formUnion(set.ids)
        }
        #expect(union.count == count)
    }
}

@Suite struct RealMNISTTests {
    @Test func readsAndVerifiesTheRealFiles() throws {
        guard let directory = mnistDirectory() else {
            Issue.record("MNIST not found: run scripts/fetch-mnist.sh or set MNIST_DIR")
            return
        }
        let train = try MNIST.load(.train, from: directory)
        #expect(train.count == 60000)
        #expect(train.classCounts() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
        let test = try MNIST.load(.test, from: directory)
        #expect(test.count == 10000)
        #expect(MNIST.checksumProblems(test, split: .test).isEmpty)
        let shard = try MNIST.load(.train, from: directory, shard: ShardSpec(rank: 1, worldSize: 3, seed: 7))
        #expect(shard.count == 20000)
        #expect(shard.imagesSHA256 == train.imagesSHA256)
    }
}
