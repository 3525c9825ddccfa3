// Counter-based random numbers (DESIGN.md decision 4).
//
// Every draw is a pure function of (seed, purpose, counters): the value for sample 4711 in
// epoch 3 is the same whichever rank asks, in whatever order, after however many other draws.
// Resuming a run therefore needs no generator state, only the counters.
//
// The mixing function is SplitMix64's finaliser applied to a running combination of the key
// words; each key word is folded in with a distinct odd constant so (a, b) and (b, a) differ.

/// What a stream of random numbers is for. Distinct purposes never share a stream.
public enum RandomPurpose: UInt64, Sendable {
    case shardPermutation = 1
    case epochShuffle = 2
    case parameterInit = 3
    case dropout = 4
    case augmentation = 5
    case elastic = 6
    case validationSplit = 7
    case batchNormRecalibration = 8
    /// Training augmentation's photometric and morphological draws (thickness, blur, contrast, noise, resolution).
    case photometric = 9
    /// The fixed perturbations of `digits evaluate --robustness` (noise, shift direction, rotation sense).
    case robustness = 10
    case test = 99
}

@inline(__always)
func splitMixFinalize(_ value: UInt64) -> UInt64 {
    var z = value
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// A random-number generator whose n-th output is `hash(key, n)`.
///
/// The key is fixed at creation from the seed, the purpose and up to three counters
/// (epoch, sample id, step, layer…). Use one generator per keyed unit of work.
public struct KeyedRandom: RandomNumberGenerator, Sendable {
    public let key: UInt64
    public private(set) var counter: UInt64 = 0

    public init(seed: UInt64, purpose: RandomPurpose, _ a: UInt64 = 0, _ b: UInt64 = 0, _ c: UInt64 = 0) {
        var k = splitMixFinalize(seed &+ 0x9E37_79B9_7F4A_7C15)
        k = splitMixFinalize(k ^ (purpose.rawValue &* 0xD6E8_FEB8_6659_FD93))
        k = splitMixFinalize(k ^ (a &* 0xA076_1D64_78BD_642F))
        k = splitMixFinalize(k ^ (b &* 0xE703_7ED1_A0B4_28DB))
        k = splitMixFinalize(k ^ (c &* 0x8EBC_6AF0_9C88_C6E3))
        key = k
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        counter &+= 1
        return splitMixFinalize(key &+ counter &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in [0, 1) with 24 random bits, exactly representable as Float.
    @inline(__always)
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform in [low, high).
    @inline(__always)
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUnitFloat()
    }

    /// Standard normal by Box–Muller (one of the pair; the other is discarded so each call
    /// consumes exactly two draws and stays a pure function of the counter).
    @inline(__always)
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUnitDouble(), 1e-300)
        let u2 = nextUnitDouble()
        return Float((-2.0 * _log(u1)).squareRoot() * _cos(2.0 * Double.pi * u2))
    }

    /// A uniform integer in 0..<bound without modulo bias (Lemire's multiply-shift with rejection).
    @inline(__always)
    public mutating func nextIndex(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        while true {
            let product = next().multipliedFullWidth(by: b)
            if product.low >= (0 &- b) % b { return Int(product.high) }
        }
    }
}

/// A permutation of 0..<count by Fisher–Yates from one keyed stream.
public func keyedPermutation(count: Int, seed: UInt64, purpose: RandomPurpose,
                             _ a: UInt64 = 0, _ b: UInt64 = 0) -> [Int32] {
    var order = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
        for i in 0..<count { buffer[i] = Int32(i) }
        initialized = count
    }
    var random = KeyedRandom(seed: seed, purpose: purpose, a, b)
    if count > 1 {
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = random.nextIndex(below: i + 1)
            order.swapAt(i, j)
        }
    }
    return order
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
