import Collective
import Testing

@Suite struct LocalGroupTests {
    @Test(arguments: [1, 2, 3, 5])
    func allreduceSumsInPlaceOnEveryRank(size: Int) throws {
        let results = try LocalGroup(size: size).run { comm -> [Float] in
            var values = (0..<1000).map { Float(comm.rank + 1) * Float($0) }
            try values.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
            return values
        }
        let factor = Float(size * (size + 1) / 2)
        for values in results { #expect(values == (0..<1000).map { factor * Float($0) }) }
    }

    /// A started reduction adds with the element's own sum (here 8-byte integers, and Float32 as
    /// `allreduceSum` adds), every rank getting the same values.
    @Test(arguments: [1, 3])
    func startedReductionsUseTheElementsSum(size: Int) throws {
        let int64 = ReductionElement(name: "int64", byteCount: 8, sum: { input, sums, count in
            let a = input.assumingMemoryBound(to: Int64.self), b = sums.assumingMemoryBound(to: Int64.self)
            for i in 0..<count { b[i] = a[i] &+ b[i] }
        })
        let results = try LocalGroup(size: size).run { comm -> ([Int64], [Float], [Float]) in
            var integers = (0..<100).map { Int64($0) << 40 + Int64(comm.rank) }
            try integers.withUnsafeMutableBytes { try comm.startAllreduceSum($0, element: int64) }
            var started = (0..<100).map { Float(comm.rank + 1) / Float($0 + 3) }
            var blocking = started
            try started.withUnsafeMutableBytes { try comm.startAllreduceSum($0, element: .float32) }
            try comm.waitReductions()
            try blocking.withUnsafeMutableBufferPointer { try comm.allreduceSum($0) }
            return (integers, started, blocking)
        }
        for (integers, started, blocking) in results {
            #expect(integers == (0..<100).map { Int64(size) * (Int64($0) << 40) + Int64(size * (size - 1) / 2) })
            #expect(started == blocking)
        }
    }

    @Test func doublesMaxBroadcastAndAllgather() throws {
        let results = try LocalGroup(size: 3).run { comm -> ([Double], [Double], [Float], [String]) in
            var sums = [Double(comm.rank), 0.5]
            try comm.allreduceSum(&sums)
            var maxima = [Double(comm.rank * 10), -Double(comm.rank)]
            try comm.allreduceMax(&maxima)
            var weights = [Float](repeating: Float(comm.rank), count: 4)
            try comm.broadcast(&weights, root: 1)
            let names = try comm.allgather(String(repeating: "r", count: comm.rank + 1))
            try comm.barrier()
            return (sums, maxima, weights, names)
        }
        for (sums, maxima, weights, names) in results {
            #expect(sums == [3, 1.5])
            #expect(maxima == [20, 0])
            #expect(weights == [1, 1, 1, 1])
            #expect(names == ["r", "rr", "rrr"])
        }
    }

    @Test func aFailingRankReleasesTheOthersWithAnError() {
        #expect(throws: (any Error).self) {
            _ = try LocalGroup(size: 3).run { comm -> Int in
                if comm.rank == 1 { throw CollectiveError("rank 1 broke") }
                try comm.barrier()   // would wait forever without the failure path
                return comm.rank
            }
        }
    }

    @Test func singleProcessIsTheIdentity() throws {
        let comm = SingleProcessCommunicator()
        var values: [Double] = [1, 2]
        try comm.allreduceSum(&values)
        #expect(values == [1, 2] && comm.size == 1 && comm.rank == 0)
        #expect(try comm.allgather([7, 8]) == [[7, 8]])
    }
}
