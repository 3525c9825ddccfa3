import CBLAS
import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The narrow interface between the layers and the arithmetic that dominates their time.
// Layers call only these functions; the GEMM backend is chosen here once, without touching a
// layer. Row-major throughout.

public enum Kernels {
    public enum Backend: String, Sendable, CaseIterable {
        /// Our own AVX-512 GEMM (CKernels), on x86-64 CPUs that have AVX-512F/VL/DQ.
        case avx512
        /// OpenBLAS: every other CPU (a Raspberry Pi among them).
        case openBLAS = "openblas"
    }

    /// AVX-512 when the CPU has it, unless DIGITS_GEMM=openblas asks for the portable path (read by
    /// `ck_has_avx512`, so the C kernels that choose for themselves follow the same answer).
    public static let preferredBackend: Backend = ck_has_avx512() != 0 ? .avx512 : .openBLAS

    /// The backend `gemm` uses. Tests switch it to compare the two; set it before training starts.
    public nonisolated(unsafe) static var backend: Backend = preferredBackend

    /// Whether the AVX-512 kernels can run in this process: the CPU has them and DIGITS_GEMM=openblas
    /// did not ask for the portable path.
    public static var avx512Available: Bool { ck_has_avx512() != 0 }

    /// Threads for this process's kernels and layer loops (1 when ranks fill the cores). OpenBLAS
    /// itself stays on one thread whatever the count: its GEMMs run inside our pool's loops (a
    /// convolution's per-sample products) or are split across the pool by `parallelGemm`, and an
    /// OpenBLAS that threads a GEMM called from two pool threads at once leaves its idle workers
    /// spinning (measured: 2 threads trained at a fifth of 1 thread's rate on the OpenBLAS path).
    public static func setThreads(_ count: Int) {
        openblas_set_num_threads(1)
        ck_set_threads(Int32(max(1, count)))
    }

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

    /// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C.
    @inline(__always)
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, backend: Backend = backend) {
        if backend == .avx512 {
            ck_sgemm(transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// `gemm` spread over the kernel threads, for a product called outside any parallel loop (a dense
    /// layer's). AVX-512's GEMM splits itself. On OpenBLAS the larger of C's two dimensions is cut into
    /// at most `gemmParts` blocks whose bounds depend on the shapes alone, and each block is one
    /// single-threaded OpenBLAS call: the same calls, so the same sums, on any number of threads.
    public static func parallelGemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, backend: Backend = backend) {
        let parts = gemmParts(m: m, n: n, k: k)
        if backend == .avx512 || parts.count == 1 {
            gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc, backend: backend)
            return
        }
        parallelFor(parts.count) { part in
            let start = part * parts.size, count = min(parts.size, (parts.splitsRows ? m : n) - start)
            if parts.splitsRows {
                // C's rows from `start` come from op(A)'s rows from `start`: A's rows, or A^T's columns.
                gemm(transposeA: transposeA, transposeB: transposeB, m: count, n: n, k: k,
                     a: a + (transposeA ? start : start * lda), lda: lda, b: b, ldb: ldb,
                     beta: beta, c: c + start * ldc, ldc: ldc, backend: backend)
            } else {
                // C's columns from `start` come from op(B)'s columns from `start`: B's columns, or B^T's rows.
                gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: count, k: k,
                     a: a, lda: lda, b: b + (transposeB ? start * ldb : start), ldb: ldb,
                     beta: beta, c: c + start, ldc: ldc, backend: backend)
            }
        }
    }

    /// At most 8 blocks (enough for 8 threads), each a multiple of 16 rows or columns but the last;
    /// one block for a product too small to pay for waking the pool (under 2^16 multiply-adds).
    static func gemmParts(m: Int, n: Int, k: Int) -> (count: Int, size: Int, splitsRows: Bool) {
        let splitsRows = m >= n, extent = max(m, n)
        guard m * n * k >= 1 << 16, extent >= 32 else { return (1, extent, splitsRows) }
        let size = ((extent + 7) / 8 + 15) / 16 * 16
        return ((extent + size - 1) / size, size, splitsRows)
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
                              columns: UnsafeMutablePointer<Float>, rowStride: Int, column0: Int,
                              backend: Backend = backend) {
        if backend == .avx512 && g.stride == 1 {
            var c = g.c
            ck_im2col_stride1(&c, input, columns + column0, rowStride)
            return
        }
        let oh = g.outputHeight, ow = g.outputWidth
        for c in 0..<g.channels {
            let plane = input + c * g.height * g.width
            for ky in 0..<g.kernel {
                for kx in 0..<g.kernel {
                    let row = columns + ((c * g.kernel + ky) * g.kernel + kx) * rowStride + column0
                    let valid = g.validColumns(kx)
                    for oy in 0..<oh {
                        let out = row + oy * ow
                        let iy = oy * g.stride - g.padding + ky
                        if iy < 0 || iy >= g.height {
                            out.update(repeating: 0, count: ow)
                            continue
                        }
                        if valid.lowerBound > 0 { out.update(repeating: 0, count: valid.lowerBound) }
                        if valid.upperBound < ow { (out + valid.upperBound).update(repeating: 0, count: ow - valid.upperBound) }
                        let source = plane + iy * g.width - g.padding + kx
                        if g.stride == 1 {
                            (out + valid.lowerBound).update(from: source + valid.lowerBound, count: valid.count)
                        } else {
                            for ox in valid { out[ox] = source[ox * g.stride] }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of im2col: adds each column entry back into the sample's input gradient.
    public static func col2imAdd(_ g: ConvGeometry, columns: UnsafePointer<Float>, rowStride: Int, column0: Int,
                                 inputGradient: UnsafeMutablePointer<Float>, backend: Backend = backend) {
        if backend == .avx512 && g.stride == 1 {
            var c = g.c
            ck_col2im_add_stride1(&c, columns + column0, rowStride, inputGradient)
            return
        }
        let oh = g.outputHeight, ow = g.outputWidth
        for c in 0..<g.channels {
            let plane = inputGradient + c * g.height * g.width
            for ky in 0..<g.kernel {
                for kx in 0..<g.kernel {
                    let row = columns + ((c * g.kernel + ky) * g.kernel + kx) * rowStride + column0
                    let valid = g.validColumns(kx)
                    for oy in 0..<oh {
                        let iy = oy * g.stride - g.padding + ky
                        if iy < 0 || iy >= g.height { continue }
                        let source = row + oy * ow
                        let target = plane + iy * g.width - g.padding + kx
                        if g.stride == 1 {
                            for ox in valid { target[ox] += source[ox] }
                        } else {
                            for ox in valid { target[ox * g.stride] += source[ox] }
                        }
                    }
                }
            }
        }
    }
    // Packed operands (AVX-512 backend only): a convolution packs its weights once per pass
    // instead of once per sample, and writes its columns straight in the GEMM's panel layout.
    public enum Packed {
        /// Floats of a packed A (m, k) or B (k, n), rounded up so consecutive blocks stay 64-byte aligned.
        public static func aFloats(m: Int, k: Int) -> Int { (ck_packed_a_floats(m, k) + 15) / 16 * 16 }
        public static func bFloats(k: Int, n: Int) -> Int { (ck_packed_b_floats(k, n) + 15) / 16 * 16 }

        /// True on the AVX-512 backend, the only one with packed operands.
        public static func available(backend: Backend = Kernels.backend) -> Bool { backend == .avx512 }

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
        /// backend has no implicit path.
        public static func columnsFloats(_ g: ConvGeometry, backend: Backend = Kernels.backend) -> Int {
            guard backend == .avx512 else { return 0 }
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

        /// Winograd F(2x2, 3x3) or F(2x2, 5x5) for this geometry, computing `outputs` channels: AVX-512,
        /// stride 1, a 3x3 or 5x5 kernel, padding below the kernel size, at most 32 output columns, and
        /// at least 16 channels in and out. Below that the transforms cost about what the saved
        /// multiplications do (`scripts/bench.sh conv`, 14 x 14, batch 8: 16 -> 16 channels 1.20x (3x3)
        /// / 1.24x (5x5) the speed of the direct convolution, 16 -> 8 1.05x, 8 -> 16 0.97x / 0.93x,
        /// 4 -> 16 0.74x).
        /// `winograd` switches it off for comparisons.
        public static func winogradApplies(_ g: ConvGeometry, outputs: Int, backend: Backend = Kernels.backend) -> Bool {
            guard backend == .avx512, winograd, g.kernel == 3 || g.kernel == 5, g.channels >= 16, outputs >= 16 else { return false }
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

        /// C (m, n) = A (m, k) · B (k, n) + beta * C, summed in the same order as `Kernels.gemm` on
        /// AVX-512. At least one operand must be packed.
        public static func gemm(m: Int, n: Int, k: Int, a: Operand, b: Operand, beta: Float,
                                c: UnsafeMutablePointer<Float>, ldc: Int) {
            precondition(a.leadingDimension == 0 || b.leadingDimension == 0, "one GEMM operand must be packed")
            ck_sgemm_packed(m, n, k, a.pointer, a.leadingDimension, b.pointer, b.leadingDimension, beta, c, ldc)
        }
    }
}
