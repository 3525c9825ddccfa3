import CKernels
import Collective

/// IEEE binary16 gradients on the wire: half the bytes of Float32, summed in binary16 (MPI adds
/// them in Float32 and rounds back after each addition).
///
/// Each bucket is multiplied by a power of two before rounding, chosen from the previous step's
/// summed gradients of that bucket (identical on every rank, so the ranks agree without a message)
/// to put its largest value near 2^12: 16x headroom under the binary16 maximum and ~11 significant
/// bits for values down to 2^-24 of the largest. A bucket with no scale yet (the first step), or
/// whose sum overflowed, is summed in Float32 for that step instead. The stop vote crosses unscaled
/// after bucket 0's halves: sums of votes stay exact to 2048 ranks.
final class Binary16Compression: GradientCompressor {
    /// binary16 values summed with the kernels' rounding (`ck_half_add`).
    static let element = ReductionElement(name: "binary16", byteCount: 2, sum: { input, sums, count in
        ck_half_add(input.assumingMemoryBound(to: UInt16.self), sums.assumingMemoryBound(to: UInt16.self), count)
    })
    static let targetMaximum: Float = 4096

    /// Per bucket: its scale for the next step (nil: send Float32).
    private(set) var scales: [Float?]
    /// Per bucket: the scale it went with this step (nil: it went as Float32).
    private var sentWith: [Float?]
    private let halves: UnsafeMutablePointer<UInt16>   // (parameterCount + 1) the wire copy, then the stop vote

    init(parameterCount: Int, bucketCount: Int) {
        scales = Array(repeating: nil, count: bucketCount)
        sentWith = scales
        halves = .allocate(capacity: parameterCount + 1)
    }

    deinit { halves.deallocate() }

    var bytesPerGradient: Int { 2 }

    func encode(_ bucket: GradientBucket, from arena: UnsafeMutablePointer<Float>) -> GradientWire {
        sentWith[bucket.index] = scales[bucket.index]
        guard let scale = scales[bucket.index] else { return bucket.uncompressed(in: arena) }
        let lo = bucket.range.lowerBound, top = bucket.range.upperBound
        ck_float_to_half(arena + lo, halves + lo, bucket.range.count, scale)
        if bucket.carriesVote { ck_float_to_half(arena + top, halves + top, 1, 1) }
        let count = bucket.range.count + (bucket.carriesVote ? 1 : 0)
        return GradientWire(bytes: UnsafeMutableRawBufferPointer(start: halves + lo, count: count * 2), element: Binary16Compression.element)
    }

    func decode(_ bucket: GradientBucket, into arena: UnsafeMutablePointer<Float>) -> Bool {
        guard let scale = sentWith[bucket.index] else { return true }   // went as Float32: summed in place
        let lo = bucket.range.lowerBound, top = bucket.range.upperBound
        if bucket.carriesVote { ck_half_to_float(halves + top, arena + top, 1, 1) }
        guard ck_half_has_nonfinite(halves + lo, bucket.range.count) == 0 else { return false }
        ck_half_to_float(halves + lo, arena + lo, bucket.range.count, 1 / scale)
        return true
    }

    func summed(_ bucket: GradientBucket, _ sums: UnsafeBufferPointer<Float>) {
        scales[bucket.index] = Binary16Compression.scale(forMaximum: ck_max_abs(sums.baseAddress, sums.count))
    }

    /// The power of two that brings `maximum` to about `targetMaximum` (nil for 0 or non-finite).
    static func scale(forMaximum maximum: Float) -> Float? {
        guard maximum > 0, maximum.isFinite else { return nil }
        let exponent = (targetMaximum / maximum).exponent   // floor(log2)
        return Float(sign: .plus, exponent: min(100, max(-100, exponent)), significand: 1)
    }

    /// The scales as one tensor, 0 for "none yet", named as checkpoints have always named it.
    var stateTensorName: String? { "exchange.fp16_scales" }
    var state: [Float] { scales.map { $0 ?? 0 } }
    func restore(_ values: [Float]) {
        guard values.count == scales.count else { return }
        scales = values.map { $0 > 0 ? $0 : nil }
    }
}
