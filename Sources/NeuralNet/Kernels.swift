import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The narrow interface between the layers and the arithmetic that dominates their time.
// Layers call only these functions; the kernel set (ISA) is chosen once, in C, without touching a
// layer. Row-major throughout.

public enum Kernels {
    /// A kernel set (Sources/CKernels), by name: one is chosen once per process, from the CPU, and
    /// every function below goes through it. Results obey the same contracts on all of them. The
    /// list is C's (`dispatch.c`), so a new ISA is added in CKernels alone.
    public struct ISA: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Plain C: the oracle the others are tested against, and the fallback for any other CPU.
        public static let reference = ISA(rawValue: "reference")

        /// Every kernel set this build carries, best first (avx512, avx2 on x86-64; neon on aarch64; reference).
        public static var allCases: [ISA] {
            (0..<ck_isa_count()).compactMap { ck_isa_name($0).map { ISA(rawValue: String(cString: $0)) } }
        }
    }

    /// The kernel set in use: the CPU's best, or the one DIGITS_ISA names (read once, in C).
    public static var isa: ISA { ISA(rawValue: String(cString: ck_isa())) }

    /// Why DIGITS_ISA could not be followed (an unknown name, or a set this CPU cannot run), if it could not.
    public static var isaProblem: String? { ck_isa_problem().map { String(cString: $0) } }

    /// Whether this build and CPU can run the kernel set.
    public static func isAvailable(_ isa: ISA) -> Bool { ck_isa_available(isa.rawValue) != 0 }

    /// The kernel sets this CPU can run, best first.
    public static var availableISAs: [ISA] { ISA.allCases.filter(isAvailable) }

    /// Runs body (on this thread, and the kernel threads it starts) with another kernel set, then
    /// restores the process's: for tests and side-by-side comparisons. Packed weights follow (they
    /// are repacked under the new set's layout).
    public static func withISA<T>(_ isa: ISA, _ body: () throws -> T) rethrows -> T {
        let before = ck_thread_isa().map { String(cString: $0) }
        precondition(ck_use_isa(isa.rawValue) != 0, "the \(isa.rawValue) kernels cannot run on this CPU")
        defer { _ = ck_use_isa(before) }
        return try body()
    }

    /// Threads for this process's kernels and layer loops (1 when ranks fill the cores).
    public static func setThreads(_ count: Int) {
        ck_set_threads(Int32(max(1, count)))
    }

    /// This thread's own kernel thread count for the jobs it submits (nil: the process's,
    /// `setThreads`). Tests set it, so that suites running at the same time never see each other's
    /// count (layers size per-thread scratch from `threads` just before a parallel loop).
    public static func useThreads(_ count: Int?) {
        ck_use_threads(Int32(count.map { max(1, $0) } ?? 0))
    }

    /// The kernel threads of the jobs this thread submits.
    public static var threads: Int { Int(ck_threads()) }

    /// The pool thread running the caller, in 0..<threads: bodies of one `parallelFor` running at
    /// the same time have different slots (for per-thread scratch).
    public static var workerSlot: Int { Int(ck_worker_slot()) }

    /// Runs body(i) for i in 0..<count on the kernel threads; returns when every call has.
    /// A GEMM called from inside `body` runs on the calling thread only.
    public static func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || ck_threads() == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var call = body
            withUnsafeMutablePointer(to: &call) { pointer in
                ck_parallel_for(count, { context, index in
                    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
                }, pointer)
            }
        }
    }

    /// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C. Outside a parallel loop the GEMM
    /// spreads itself over the kernel threads; inside one it runs on the calling thread. Every
    /// element is summed in the same order on every kernel set and thread count (ckernels.h).
    @inline(__always)
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        ck_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// Geometry of a 2-D convolution over one sample.
    public struct ConvGeometry: Sendable, Equatable {
        public let channels, height, width, kernel, stride, padding: Int
        public var outputHeight: Int { (height + 2 * padding - kernel) / stride + 1 }
        public var outputWidth: Int { (width + 2 * padding - kernel) / stride + 1 }
        public var patchSize: Int { channels * kernel * kernel }
        public var outputPixels: Int { outputHeight * outputWidth }

        var c: ck_conv_geometry {
            ck_conv_geometry(channels: channels, height: height, width: width, kernel: kernel, stride: stride,
                             padding: padding, output_height: outputHeight, output_width: outputWidth)
        }

        /// Output columns ox whose input column ox*stride - padding + kx lies inside the image.
        @inline(__always)
        func validColumns(_ kx: Int) -> Range<Int> {
            let shift = padding - kx
            let start = shift > 0 ? (shift + stride - 1) / stride : 0
            let end = min(outputWidth, (width - 1 + shift) / stride + 1)
            return start..<max(start, end)
        }
    }

    /// Unfolds one sample (C, H, W) into columns: col[(c*K + ky)*K + kx][column0 + oy*OW + ox],
    /// rows of length `rowStride` (so a batch of samples can share one matrix). Zero padding.
    public static func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>,
                              columns: UnsafeMutablePointer<Float>, rowStride: Int, column0: Int) {
        var c = g.c
        ck_im2col(&c, input, columns + column0, rowStride)
    }

    /// The adjoint of im2col: adds each column entry back into the sample's input gradient.
    public static func col2imAdd(_ g: ConvGeometry, columns: UnsafePointer<Float>, rowStride: Int, column0: Int,
                                 inputGradient: UnsafeMutablePointer<Float>) {
        var c = g.c
        ck_col2im_add(&c, columns + column0, rowStride, inputGradient)
    }

    // Packed operands: a convolution packs its weights once per pass instead of once per sample.
    // The panel layout is the kernel set's own (its register tile), so pack after choosing it.
    public enum Packed {
        /// Floats of a packed A (m, k) or B (k, n), rounded up so consecutive blocks stay 64-byte aligned.
        public static func aFloats(m: Int, k: Int) -> Int { (ck_packed_a_floats(m, k) + 15) / 16 * 16 }
        public static func bFloats(k: Int, n: Int) -> Int { (ck_packed_b_floats(k, n) + 15) / 16 * 16 }

        /// One GEMM operand: packed panels (from `packA`/`packB`), or a row-major matrix read in place.
        public enum Operand {
            case packed(UnsafePointer<Float>)
            case rows(UnsafePointer<Float>, ld: Int)

            var pointer: UnsafePointer<Float> {
                switch self {
                case .packed(let p), .rows(let p, _): p
                }
            }

            var leadingDimension: Int {
                switch self {
                case .packed: 0
                case .rows(_, let ld): ld
                }
            }
        }

        /// alpha * op(A) (m, k) as packed panels.
        public static func packA(transpose: Bool, _ a: UnsafePointer<Float>, lda: Int, m: Int, k: Int, alpha: Float = 1,
                                 into out: UnsafeMutablePointer<Float>) {
            ck_pack_a(transpose ? 1 : 0, a, lda, m, k, alpha, out)
        }

        /// op(B) (k, n) as packed panels.
        public static func packB(transpose: Bool, _ b: UnsafePointer<Float>, ldb: Int, k: Int, n: Int,
                                 into out: UnsafeMutablePointer<Float>) {
            ck_pack_b(transpose ? 1 : 0, b, ldb, k, n, out)
        }

        /// Scratch floats for a sample's implicit columns (`prepareColumns`); 0 when the geometry or
        /// the kernel set has no implicit path.
        public static func columnsFloats(_ g: ConvGeometry) -> Int {
            var c = g.c
            return ck_conv_columns_floats(&c)
        }

        /// A sample's columns without the column matrix: its padded copy and offset tables, in scratch.
        public static func prepareColumns(_ g: ConvGeometry, input: UnsafePointer<Float>,
                                          scratch: UnsafeMutablePointer<Float>) -> ck_conv_columns {
            var c = g.c
            var columns = ck_conv_columns()
            ck_conv_columns_prepare(&c, input, scratch, &columns)
            return columns
        }

        /// Y (m, n) = A (m, k) · columns (k, n) + beta * Y, A packed: the same sums as `gemm` with
        /// the explicit columns as `.rows`.
        public static func convolve(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, columns: ck_conv_columns, beta: Float,
                                    c: UnsafeMutablePointer<Float>, ldc: Int) {
            var columns = columns
            ck_conv_forward_gemm(m, n, k, a, &columns, beta, c, ldc)
        }

        /// C (m, n) = columns (m, k) · B (k, n) + beta * C, B packed: the same sums as `gemm` with the
        /// explicit columns as `.rows`.
        public static func columnsTimes(m: Int, n: Int, k: Int, columns: ck_conv_columns, b: UnsafePointer<Float>, beta: Float,
                                        c: UnsafeMutablePointer<Float>, ldc: Int) {
            var columns = columns
            ck_conv_weight_gradient_gemm(m, n, k, &columns, b, beta, c, ldc)
        }

        /// Winograd F(2x2, 3x3) or F(2x2, 5x5) for this geometry, computing `outputs` channels: a kernel
        /// set that has it (AVX-512, AVX2),
        /// stride 1, a 3x3 or 5x5 kernel, padding below the kernel size, at most 32 output columns, and
        /// at least 16 channels in and out. Below that the transforms cost about what the saved
        /// multiplications do (`scripts/bench.sh conv`, 14 x 14, batch 8: 16 -> 16 channels 1.20x (3x3)
        /// / 1.24x (5x5) the speed of the direct convolution, 16 -> 8 1.05x, 8 -> 16 0.97x / 0.93x,
        /// 4 -> 16 0.74x).
        /// `winograd` switches it off for comparisons.
        public static func winogradApplies(_ g: ConvGeometry, outputs: Int) -> Bool {
            guard winograd, g.kernel == 3 || g.kernel == 5, g.channels >= 16, outputs >= 16 else { return false }
            var c = g.c
            return ck_winograd_supported(&c) != 0
        }

        /// Whether the kernel set has a Winograd convolution for this geometry at all (whatever the
        /// channel counts; `winogradApplies` decides whether a layer uses it).
        public static func winogradSupported(_ g: ConvGeometry) -> Bool {
            var c = g.c
            return ck_winograd_supported(&c) != 0
        }

        /// Whether convolutions may use Winograd (`winogradApplies`): on unless DIGITS_WINOGRAD=0, which
        /// runs the direct convolutions in the same binary, for side-by-side comparisons.
        public static let winograd: Bool = {
            if let asked = getenv("DIGITS_WINOGRAD").map({ String(cString: $0) }), asked == "0" { return false }
            return true
        }()

        /// Floats of a layer's transformed weights (m outputs, k input channels, a kernel x kernel window).
        public static func winogradWeightsFloats(m: Int, k: Int, kernel: Int) -> Int { ck_winograd_weights_floats(m, k, kernel) }

        /// w (oc, c, kernel, kernel) transformed for `winogradConvolve`: the layer (adjoint false, m = oc,
        /// k = c), or the convolution that gives its input gradient (adjoint true, m = c, k = oc, kernels
        /// flipped).
        public static func winogradWeights(_ w: UnsafePointer<Float>, outputChannels: Int, inputChannels: Int, kernel: Int,
                                           adjoint: Bool, into out: UnsafeMutablePointer<Float>) {
            ck_winograd_weights(w, outputChannels, inputChannels, kernel, adjoint ? 1 : 0, out)
        }

        /// Scratch floats of one thread's `winogradConvolve` with m output channels: a multiple of 16, so
        /// that one block per thread, end to end, keeps each 64-byte aligned.
        public static func winogradScratchFloats(_ g: ConvGeometry, m: Int) -> Int {
            var c = g.c
            return ck_winograd_scratch_floats(&c, m)
        }

        /// output (samples, m, OH, OW) = input (samples, C, H, W) convolved with the transformed
        /// weights u, + bias. Parallel across the threads outside a parallel loop, serial inside one.
        public static func winogradConvolve(_ g: ConvGeometry, m: Int, weights u: UnsafePointer<Float>,
                                            input: UnsafePointer<Float>, samples: Int, bias: UnsafePointer<Float>?,
                                            output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
            var c = g.c
            ck_winograd_conv(&c, m, u, input, samples, bias, output, scratch)
        }

        /// y (columns, rows) += x^T for a row-major x (rows, columns), in 16 x 16 tiles.
        public static func addTransposed(_ x: UnsafePointer<Float>, rows: Int, columns: Int, into y: UnsafeMutablePointer<Float>) {
            for i0 in stride(from: 0, to: rows, by: 16) {
                for j0 in stride(from: 0, to: columns, by: 16) {
                    for j in j0..<min(j0 + 16, columns) {
                        for i in i0..<min(i0 + 16, rows) { y[j * rows + i] += x[i * columns + j] }
                    }
                }
            }
        }

        /// C (m, n) = A (m, k) · B (k, n) + beta * C, summed in the same order as `Kernels.gemm`. At
        /// least one operand must be packed.
        public static func gemm(m: Int, n: Int, k: Int, a: Operand, b: Operand, beta: Float,
                                c: UnsafeMutablePointer<Float>, ldc: Int) {
            precondition(a.leadingDimension == 0 || b.leadingDimension == 0, "one GEMM operand must be packed")
            ck_sgemm_packed(m, n, k, a.pointer, a.leadingDimension, b.pointer, b.leadingDimension, beta, c, ldc)
        }
    }
}
