import CKernels
import Foundation
import Collective
import NeuralNet
import Testing
@testable import Training

/// Buckets, compressors (fp16 and its overflow fallback, one of the test's own), with in-process
/// ranks; the same settings run under real mpirun in scripts/test.sh (all ranks bit-identical).
@Suite struct GradientExchangeTests {
    static let spec = "conv4k3p1-bn-relu-pool2-conv8k3p1-relu-pool2-flatten-dense16-relu-dense10"

    @Test func bucketsCoverTheArenaOnceLastLayersFirst() throws {
        let network = Network(spec: try ModelSpec(parsing: GradientExchangeTests.spec), seed: 1)
        for bytes in [0, 64, 1024, 4096, 1 << 30] {
            let exchange = GradientExchange(network: network, communicator: SingleProcessCommunicator(),
                                            settings: ExchangeSettings(compression: .none, bucketBytes: bytes))
            let ranges = exchange.buckets.map(\.range)
            // Contiguous, descending, covering 0..<parameterCount exactly.
            #expect(ranges.first?.upperBound == network.parameterCount)
            #expect(ranges.last?.lowerBound == 0)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.lowerBound == $1.upperBound })
            // A bucket starts once its lowest layer is done: that layer's parameters begin the range.
            #expect(exchange.buckets.allSatisfy { network.parameterRanges[$0.firstLayer].lowerBound == $0.range.lowerBound })
            if bytes == 0 || bytes == 1 << 30 { #expect(ranges.count == 1) } else { #expect(ranges.count > 1) }
        }
    }

    /// Runs `steps` reductions of per-rank gradients through the exchange on 3 in-process ranks and
    /// returns every rank's arena after each step.
    /// `compressor` makes each rank's own, instead of the one `settings` names.
    func reduce(steps: [[[Float]]], settings: ExchangeSettings,
                compressor: (@Sendable () -> GradientCompressor)? = nil) throws -> [[[Float]]] {
        let spec = try ModelSpec(parsing: GradientExchangeTests.spec)
        return try LocalGroup(size: 3).run { communicator in
            let network = Network(spec: spec, seed: 1)
            let exchange = GradientExchange(network: network, communicator: communicator, settings: settings,
                                            compressor: compressor?())
            var results = [[Float]]()
            for step in steps {
                let mine = step[communicator.rank]
                for i in 0..<mine.count { network.store.gradients[i] = mine[i] }
                exchange.beginStep()
                for layer in stride(from: network.layers.count - 1, through: 0, by: -1) { exchange.layerDone(layer) }
                try exchange.finish()
                results.append(Array(network.store.gradientBuffer))
            }
            return results
        }
    }

    func gradients(count: Int, scale: Float, seed: Int) -> [[Float]] {
        (0..<3).map { rank in
            (0..<count).map { i -> Float in
                let wave = Float(sin(Double(i * 7 + rank * 13 + seed)))
                return scale * wave * (i % 5 == 0 ? 0.001 : 1)
            }
        }
    }

    @Test func fp16SumsAreCloseToExactAndEqualOnEveryRank() throws {
        let count = Network(spec: try ModelSpec(parsing: GradientExchangeTests.spec), seed: 1).parameterCount
        let steps = (0..<3).map { gradients(count: count, scale: 1e-3, seed: $0) }
        let exact = try reduce(steps: steps, settings: ExchangeSettings(compression: .none, bucketBytes: 1024))
        let half = try reduce(steps: steps, settings: ExchangeSettings(compression: .fp16, bucketBytes: 1024))
        for step in 0..<3 {
            #expect(half[0][step] == half[1][step] && half[1][step] == half[2][step])
            let expected = zip(zip(steps[step][0], steps[step][1]), steps[step][2]).map { $0.0 + $0.1 + $1 }
            #expect(zip(exact[0][step], expected).allSatisfy { abs($0 - $1) <= 1e-9 })
            let worst = zip(half[0][step], expected).map { abs($0 - $1) }.max() ?? 0
            if step == 0 {
                #expect(worst <= 1e-9)   // no scale yet: the first step goes as Float32
            } else {
                // Three roundings to 11 significant bits of values near 3e-3: well under 1e-5.
                #expect(worst > 0 && worst < 1e-5)
            }
        }
    }

    @Test func anOverflowingBucketIsResentAsFloat32() throws {
        let count = Network(spec: try ModelSpec(parsing: GradientExchangeTests.spec), seed: 1).parameterCount
        // Step 0 sets tiny scales' inverse (huge multipliers); step 1's values are 10^6 times larger.
        let steps = [gradients(count: count, scale: 1e-6, seed: 0), gradients(count: count, scale: 1, seed: 1)]
        let half = try reduce(steps: steps, settings: ExchangeSettings(compression: .fp16, bucketBytes: 1024))
        let expected = zip(zip(steps[1][0], steps[1][1]), steps[1][2]).map { $0.0 + $0.1 + $1 }
        #expect(zip(half[0][1], expected).allSatisfy { abs($0 - $1) <= 1e-6 })
        #expect(half[0][1] == half[2][1])
    }

    @Test func powerOfTwoScalesPutTheMaximumNear4096() {
        for maximum: Float in [1e-8, 3e-4, 0.5, 1, 700, 60000] {
            let scale = Binary16Compression.scale(forMaximum: maximum)!
            #expect(scale.significand == 1)
            #expect(maximum * scale > 2048 && maximum * scale <= 4096)
        }
        #expect(Binary16Compression.scale(forMaximum: 0) == nil)
        #expect(Binary16Compression.scale(forMaximum: .infinity) == nil)
    }

    /// Encoding with a scale and decoding an unreduced wire gives back each gradient to binary16's
    /// precision, and the vote exactly; a bucket without a scale goes as the arena itself.
    @Test func binary16RoundTripsABucketAndItsVote() {
        let count = 300
        let arena = UnsafeMutablePointer<Float>.allocate(capacity: count + 1)
        defer { arena.deallocate() }
        let values = (0..<count).map { Float(sin(Double($0))) * 3e-3 }
        arena.update(from: values, count: count)
        arena[count] = 1   // the stop vote
        let bucket = GradientBucket(index: 0, range: 0..<count, firstLayer: 0)
        let compressor: GradientCompressor = Binary16Compression(parameterCount: count, bucketCount: 1)
        let first = compressor.encode(bucket, from: arena)
        #expect(first.bytes.baseAddress == UnsafeMutableRawPointer(arena) && first.bytes.count == (count + 1) * 4)
        #expect(first.element.name == "float32" && compressor.decode(bucket, into: arena))
        compressor.summed(bucket, UnsafeBufferPointer(start: arena, count: count))
        #expect(compressor.state == [Binary16Compression.scale(forMaximum: values.map(abs).max() ?? 0)!])

        let wire = compressor.encode(bucket, from: arena)
        #expect(wire.bytes.count == (count + 1) * 2 && wire.element.byteCount == 2)
        arena.update(repeating: 0, count: count + 1)
        #expect(compressor.decode(bucket, into: arena))
        #expect(arena[count] == 1)
        #expect((0..<count).allSatisfy { abs(arena[$0] - values[$0]) <= abs(values[$0]) * 0x1p-11 })
    }

    /// The binary16 sum rounds each addition as Swift's Float16 does; the Float32 sum is Float's `+`.
    @Test func reductionElementsSumAsTheirTypesAdd() {
        var state: UInt32 = 7
        var a = [UInt16](), b = [UInt16]()
        for _ in 0..<20_000 {
            state = state &* 1_664_525 &+ 1_013_904_223
            a.append(UInt16(truncatingIfNeeded: state >> 16))
            b.append(UInt16(truncatingIfNeeded: state))
        }
        var sums = b
        Binary16Compression.element.sum(a, &sums, a.count)
        let mismatches = (0..<a.count).filter { i in
            let reference = Float16(bitPattern: a[i]) + Float16(bitPattern: b[i])
            return reference.isNaN ? !Float16(bitPattern: sums[i]).isNaN : sums[i] != reference.bitPattern
        }
        #expect(mismatches.isEmpty)
        let x: [Float] = [1, 0.1, -3e-8, .infinity], y: [Float] = [2, 0.2, 3e-8, 1]
        var floatSums = y
        ReductionElement.float32.sum(x, &floatSums, x.count)
        #expect(floatSums == zip(x, y).map { $0 + $1 })
    }

    /// A compressor of the test's own plugs into the exchange: gradients as Int32 multiples of 2^-20
    /// with integer sums (exact), the vote as an integer. Every rank gets the same sums and votes.
    @Test func aCompressorOfOurOwnPlugsIn() throws {
        let count = Network(spec: try ModelSpec(parsing: GradientExchangeTests.spec), seed: 1).parameterCount
        let steps = (0..<2).map { gradients(count: count, scale: 1e-2, seed: $0) }
        let fixed = try reduce(steps: steps, settings: ExchangeSettings(bucketBytes: 1024)) { FixedPointCompression(parameterCount: count) }
        for step in 0..<2 {
            #expect(fixed[0][step] == fixed[1][step] && fixed[1][step] == fixed[2][step])
            let expected = zip(zip(steps[step][0], steps[step][1]), steps[step][2]).map { $0.0 + $0.1 + $1 }
            #expect(zip(fixed[0][step], expected).allSatisfy { abs($0 - $1) <= 3 * 0x1p-21 + 1e-9 })
        }
        let votes = try LocalGroup(size: 3).run { communicator -> Int in
            let network = Network(spec: try ModelSpec(parsing: GradientExchangeTests.spec), seed: 1)
            let exchange = GradientExchange(network: network, communicator: communicator, settings: ExchangeSettings(bucketBytes: 1024),
                                            compressor: FixedPointCompression(parameterCount: count))
            exchange.beginStep(stop: communicator.rank != 1)
            try exchange.finish()
            return exchange.stopVotes
        }
        #expect(votes == [2, 2, 2])
    }

    /// The binary16 conversions (portable and AVX-512) round as Swift's Float16 does, for every
    /// half value and for floats across the whole range, subnormals and overflow included.
    @Test func halfConversionsMatchSwiftFloat16() {
        var bad = 0
        for bits in 0...UInt16.max {
            var wide: Float = 0
            var value = bits
            ck_half_to_float(&value, &wide, 1, 1)
            let reference = Float(Float16(bitPattern: bits))
            if !(wide == reference || (wide.isNaN && reference.isNaN)) { bad += 1 }
        }
        var floats = [Float]()
        var state: UInt32 = 12345
        for i in 0..<200_015 {
            state = state &* 1_664_525 &+ 1_013_904_223
            floats.append(i % 2 == 0 ? Float(bitPattern: state) : Float(Int32(bitPattern: state)) * 1e-14)
        }
        var halves = [UInt16](repeating: 0, count: floats.count)
        ck_float_to_half(floats, &halves, floats.count, 1)            // AVX-512 body (when present), portable tail
        for (i, x) in floats.enumerated() where !x.isNaN {
            var one: UInt16 = 0
            ck_float_to_half([x], &one, 1, 1)                         // always the portable code
            let reference = Float16(x).bitPattern
            if halves[i] != reference || one != reference { bad += 1 }
        }
        #expect(bad == 0)
    }
}

/// Gradients as Int32 multiples of 2^-20, summed as integers: a whole compressor in a dozen lines.
final class FixedPointCompression: GradientCompressor {
    static let element = ReductionElement(name: "int32", byteCount: 4, sum: { input, sums, count in
        let a = input.assumingMemoryBound(to: Int32.self), b = sums.assumingMemoryBound(to: Int32.self)
        for i in 0..<count { b[i] = a[i] &+ b[i] }
    })
    let wire: UnsafeMutablePointer<Int32>   // (parameterCount + 1) the gradients, then the vote
    init(parameterCount: Int) { wire = .allocate(capacity: parameterCount + 1) }
    deinit { wire.deallocate() }
    var bytesPerGradient: Int { 4 }

    func encode(_ bucket: GradientBucket, from arena: UnsafeMutablePointer<Float>) -> GradientWire {
        for i in bucket.range { wire[i] = Int32((arena[i] * 0x1p20).rounded()) }
        if bucket.carriesVote { wire[bucket.range.upperBound] = Int32(arena[bucket.range.upperBound]) }
        let count = bucket.range.count + (bucket.carriesVote ? 1 : 0)
        return GradientWire(bytes: UnsafeMutableRawBufferPointer(start: wire + bucket.range.lowerBound, count: count * 4),
                            element: FixedPointCompression.element)
    }

    func decode(_ bucket: GradientBucket, into arena: UnsafeMutablePointer<Float>) -> Bool {
        for i in bucket.range { arena[i] = Float(wire[i]) * 0x1p-20 }
        if bucket.carriesVote { arena[bucket.range.upperBound] = Float(wire[bucket.range.upperBound]) }
        return true
    }
}
