import CKernels
import Foundation
import Collective
import NeuralNet
import Testing
@testable import Training

/// Buckets, fp16 compression and its overflow fallback, with in-process ranks; the same settings
/// run under real mpirun in scripts/test.sh (all ranks bit-identical).
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
    func reduce(steps: [[[Float]]], settings: ExchangeSettings) throws -> [[[Float]]] {
        let spec = try ModelSpec(parsing: GradientExchangeTests.spec)
        return try LocalGroup(size: 3).run { communicator in
            let network = Network(spec: spec, seed: 1)
            let exchange = GradientExchange(network: network, communicator: communicator, settings: settings)
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
            let scale = GradientExchange.scale(forMaximum: maximum)!
            #expect(scale.significand == 1)
            #expect(maximum * scale > 2048 && maximum * scale <= 4096)
        }
        #expect(GradientExchange.scale(forMaximum: 0) == nil)
        #expect(GradientExchange.scale(forMaximum: .infinity) == nil)
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
