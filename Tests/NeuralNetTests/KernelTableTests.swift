import CounterRNG
import Testing
@testable import NeuralNet

/// Every kernel set this CPU can run (Kernels.availableISAs), as the layers reach it through Swift,
/// against exact references and against the plain C reference set: GEMM (bit-identical on every
/// set), im2col and its adjoint, pooling, dropout's draws, the batch-norm passes and the optimizer;
/// results do not depend on the thread count. Tests/ckernels/kernel_test.c checks the C tables
/// entry by entry, and the NEON table under qemu.
@Suite(.serialized)
struct KernelTableTests {
    /// The sets under test: all this CPU runs. The reference is the oracle, compared with itself too.
    static let isas = Kernels.availableISAs

    func random(_ count: Int, _ seed: UInt64) -> [Float] {
        var r = KeyedRandom(seed: seed, purpose: .test)
        return (0..<count).map { _ in r.nextUniform(-1, 1) }
    }

    /// (m, n, k): micro-tile edges (8 x 32), K chunking (> 256), the layer shapes of `reference`.
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (8, 32, 16), (7, 31, 17), (9, 33, 257), (130, 70, 513),
                                            (17, 100, 1), (64, 196, 800), (800, 196, 64), (64, 800, 196), (64, 256, 300)]

    @Test(arguments: KernelTableTests.isas, [1, 2])
    func gemmEqualsDoublePrecisionLoopsAndTheReferenceBits(isa: Kernels.ISA, threads: Int) {
        Kernels.useThreads(threads)
        defer { Kernels.useThreads(nil) }
        for (m, n, k) in KernelTableTests.shapes {
            for transposeA in [false, true] {
                for transposeB in [false, true] {
                    for accumulate in [false, true] {
                        let lda = transposeA ? m + 3 : k + 5, ldb = transposeB ? k + 2 : n + 1, ldc = n + 7
                        let a = random((transposeA ? k : m) * lda, 1), b = random((transposeB ? n : k) * ldb, 2)
                        let initial = random(m * ldc, 3)
                        // beta 0 must not read C: start from NaN there.
                        var c = accumulate ? initial : [Float](repeating: .nan, count: m * ldc), reference = c
                        let alpha: Float = accumulate ? 0.5 : 1, beta: Float = accumulate ? 1 : 0
                        Kernels.withISA(isa) {
                            Kernels.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                         a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
                        }
                        Kernels.withISA(.reference) {
                            Kernels.gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                         a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: &reference, ldc: ldc)
                        }
                        #expect(c.map(\.bitPattern) == reference.map(\.bitPattern),
                                "\(isa) vs reference: m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB)")
                        var worst = 0.0
                        var paddingKept = true
                        for i in 0..<m {
                            for j in 0..<n {
                                var sum = 0.0
                                for p in 0..<k {
                                    let x = Double(transposeA ? a[p * lda + i] : a[i * lda + p])
                                    let y = Double(transposeB ? b[j * ldb + p] : b[p * ldb + j])
                                    sum += x * y
                                }
                                let expected = Double(alpha) * sum + (accumulate ? Double(initial[i * ldc + j]) : 0)
                                worst = max(worst, abs(expected - Double(c[i * ldc + j])).isNaN ? .infinity
                                                 : abs(expected - Double(c[i * ldc + j])))
                            }
                            for j in n..<ldc where c[i * ldc + j].bitPattern != (accumulate ? initial[i * ldc + j] : Float.nan).bitPattern {
                                paddingKept = false
                            }
                        }
                        // Float sums of k products of values in [-1, 1]: error grows like sqrt(k) ulps.
                        #expect(worst < 2e-6 * Double(k).squareRoot() + 1e-6, "m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB)")
                        #expect(paddingKept, "columns past n were written: m \(m) n \(n) k \(k)")
                    }
                }
            }
        }
    }

    /// Packed and in-place operands give exactly the sums of `Kernels.gemm` (same k chunks, same
    /// order), whichever operand is packed, at every tile edge; columns past n are never written.
    @Test(arguments: KernelTableTests.isas, [1, 2])
    func packedOperandsGiveTheSameSumsAsGemm(isa: Kernels.ISA, threads: Int) {
        Kernels.useThreads(threads)
        defer { Kernels.useThreads(nil) }
        Kernels.withISA(isa) { packedOperandsGiveTheSameSumsAsGemm() }
    }

    func packedOperandsGiveTheSameSumsAsGemm() {
        for (m, n, k) in KernelTableTests.shapes {
            let lda = k + 5, ldb = n + 3, ldc = n + 7
            let a = random(m * lda, 4), b = random(k * ldb, 5), initial = random(m * ldc, 6)
            for accumulate in [false, true] {
                let beta: Float = accumulate ? 1 : 0
                var expected = initial
                Kernels.gemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                             beta: beta, c: &expected, ldc: ldc)
                // Packed operands must be 64-byte aligned, as FloatBuffer's are.
                let packedA = FloatBuffer(capacity: Kernels.Packed.aFloats(m: m, k: k))
                let packedB = FloatBuffer(capacity: Kernels.Packed.bFloats(k: k, n: n))
                a.withUnsafeBufferPointer { Kernels.Packed.packA(transpose: false, $0.baseAddress!, lda: lda, m: m, k: k, into: packedA.pointer) }
                b.withUnsafeBufferPointer { Kernels.Packed.packB(transpose: false, $0.baseAddress!, ldb: ldb, k: k, n: n, into: packedB.pointer) }
                a.withUnsafeBufferPointer { aRows in
                    b.withUnsafeBufferPointer { bRows in
                        let forms: [(Kernels.Packed.Operand, Kernels.Packed.Operand, String)] = [
                            (.packed(packedA.pointer), .packed(packedB.pointer), "packed x packed"),
                            (.packed(packedA.pointer), .rows(bRows.baseAddress!, ld: ldb), "packed x rows"),
                            (.rows(aRows.baseAddress!, ld: lda), .packed(packedB.pointer), "rows x packed"),
                        ]
                        for (left, right, label) in forms {
                            var c = accumulate ? initial : [Float](repeating: .nan, count: m * ldc)
                            c.withUnsafeMutableBufferPointer {
                                Kernels.Packed.gemm(m: m, n: n, k: k, a: left, b: right, beta: beta, c: $0.baseAddress!, ldc: ldc)
                            }
                            var equal = true
                            for i in 0..<m {
                                for j in 0..<ldc {
                                    let want = j < n ? expected[i * ldc + j] : (accumulate ? initial[i * ldc + j] : .nan)
                                    if c[i * ldc + j].bitPattern != want.bitPattern { equal = false }
                                }
                            }
                            #expect(equal, "\(label): m \(m) n \(n) k \(k) beta \(beta)")
                        }
                    }
                }
            }
        }
    }

    /// The convolution GEMMs over implicit columns (a padded copy and offset tables), on every set,
    /// give exactly the sums of the packed GEMM over explicit im2col columns:
    /// forward (1 and 2 threads) and the transposed weight gradient; nothing past n is written.
    @Test(arguments: [(Shape(channels: 32, height: 14, width: 14), 5, 2, 64), (Shape(channels: 1, height: 28, width: 28), 5, 2, 32),
                      (Shape(channels: 6, height: 14, width: 14), 5, 0, 16), (Shape(channels: 3, height: 13, width: 11), 3, 1, 9),
                      (Shape(channels: 4, height: 5, width: 3), 3, 1, 5), (Shape(channels: 2, height: 13, width: 13), 2, 0, 40)])
    func implicitColumnsGiveTheSameSums(shape: Shape, kernel: Int, padding: Int, outputs: Int) {
        for isa in KernelTableTests.isas {
            Kernels.withISA(isa) { implicitColumnsGiveTheSameSums(isa, shape: shape, kernel: kernel, padding: padding, outputs: outputs) }
        }
    }

    func implicitColumnsGiveTheSameSums(_ isa: Kernels.ISA, shape: Shape, kernel: Int, padding: Int, outputs: Int) {
        let g = Kernels.ConvGeometry(channels: shape.channels, height: shape.height, width: shape.width, kernel: kernel,
                                     stride: 1, padding: padding)
        let patch = g.patchSize, pixels = g.outputPixels
        let scratchFloats = Kernels.Packed.columnsFloats(g)
        #expect(scratchFloats > 0, "\(isa) has implicit columns for every stride-1 geometry here")
        let x = random(shape.count, 11), w = random(outputs * patch, 12), dY = random(outputs * pixels, 13)
        var cols = [Float](repeating: 0, count: patch * pixels)
        Kernels.withISA(.reference) { Kernels.im2col(g, input: x, columns: &cols, rowStride: pixels, column0: 0) }
        let scratch = FloatBuffer(capacity: scratchFloats)
        scratch.zero(scratchFloats)
        let implicit = x.withUnsafeBufferPointer { Kernels.Packed.prepareColumns(g, input: $0.baseAddress!, scratch: scratch.pointer) }
        let packedW = FloatBuffer(capacity: Kernels.Packed.aFloats(m: outputs, k: patch))
        w.withUnsafeBufferPointer { Kernels.Packed.packA(transpose: false, $0.baseAddress!, lda: patch, m: outputs, k: patch, into: packedW.pointer) }
        let ldc = pixels + 3
        for threads in [1, 2] {
            Kernels.useThreads(threads)
            defer { Kernels.useThreads(nil) }
            var explicit = [Float](repeating: .nan, count: outputs * ldc), viaTables = explicit
            cols.withUnsafeBufferPointer { c in
                explicit.withUnsafeMutableBufferPointer {
                    Kernels.Packed.gemm(m: outputs, n: pixels, k: patch, a: .packed(packedW.pointer), b: .rows(c.baseAddress!, ld: pixels),
                                        beta: 0, c: $0.baseAddress!, ldc: ldc)
                }
            }
            viaTables.withUnsafeMutableBufferPointer {
                Kernels.Packed.convolve(m: outputs, n: pixels, k: patch, a: packedW.pointer, columns: implicit, beta: 0,
                                        c: $0.baseAddress!, ldc: ldc)
            }
            #expect(explicit.map(\.bitPattern) == viaTables.map(\.bitPattern), "forward \(shape) k\(kernel) p\(padding) threads \(threads)")
        }
        // dW^T (CKK, OC) = col (CKK, P) · dY^T (P, OC), accumulating onto a start value.
        let packedDYT = FloatBuffer(capacity: Kernels.Packed.bFloats(k: pixels, n: outputs))
        dY.withUnsafeBufferPointer { Kernels.Packed.packB(transpose: true, $0.baseAddress!, ldb: pixels, k: pixels, n: outputs, into: packedDYT.pointer) }
        let start = random(patch * outputs, 14)
        var explicit = start, viaTables = start
        cols.withUnsafeBufferPointer { c in
            explicit.withUnsafeMutableBufferPointer {
                Kernels.Packed.gemm(m: patch, n: outputs, k: pixels, a: .rows(c.baseAddress!, ld: pixels), b: .packed(packedDYT.pointer),
                                    beta: 1, c: $0.baseAddress!, ldc: outputs)
            }
        }
        viaTables.withUnsafeMutableBufferPointer {
            Kernels.Packed.columnsTimes(m: patch, n: outputs, k: pixels, columns: implicit, b: packedDYT.pointer, beta: 1,
                                        c: $0.baseAddress!, ldc: outputs)
        }
        #expect(explicit.map(\.bitPattern) == viaTables.map(\.bitPattern), "weight gradient \(shape) k\(kernel) p\(padding)")
    }

    /// Winograd F(2x2, 3x3) and F(2x2, 5x5) equal the convolution summed in double precision, for the
    /// layer (with its bias) and for its input gradient's convolution (flipped kernels, channels
    /// swapped), at paddings from 0 to K-1, odd sizes, rows wider than 16 lanes, and batches that cross
    /// the chunks of tile rows. Each sample's bits do not depend on the thread count or on the other
    /// samples.
    @Test(arguments: [(Shape(channels: 32, height: 14, width: 14), 3, 1, 64, 5), (Shape(channels: 64, height: 14, width: 14), 3, 1, 32, 3),
                      (Shape(channels: 9, height: 13, width: 11), 3, 0, 8, 2), (Shape(channels: 8, height: 15, width: 13), 3, 1, 9, 4),
                      (Shape(channels: 10, height: 28, width: 28), 3, 1, 12, 2), (Shape(channels: 16, height: 11, width: 11), 3, 2, 9, 3),
                      (Shape(channels: 32, height: 14, width: 14), 5, 2, 64, 3), (Shape(channels: 9, height: 13, width: 11), 5, 2, 8, 2),
                      (Shape(channels: 8, height: 12, width: 12), 5, 0, 10, 3), (Shape(channels: 16, height: 10, width: 10), 5, 4, 8, 2),
                      (Shape(channels: 8, height: 28, width: 28), 5, 2, 10, 2)])
    func winogradEqualsTheDirectConvolution(shape: Shape, kernel: Int, padding: Int, outputs: Int, samples: Int) {
        for isa in KernelTableTests.isas {
            Kernels.withISA(isa) {
                winogradEqualsTheDirectConvolution(isa, shape: shape, kernel: kernel, padding: padding, outputs: outputs, samples: samples)
            }
        }
    }

    func winogradEqualsTheDirectConvolution(_ isa: Kernels.ISA, shape: Shape, kernel: Int, padding: Int, outputs: Int, samples: Int) {
        let g = Kernels.ConvGeometry(channels: shape.channels, height: shape.height, width: shape.width, kernel: kernel,
                                     stride: 1, padding: padding)
        guard Kernels.Packed.winogradSupported(g) else { return }  // a set without Winograd for this geometry
        // AVX-512's runs any such geometry; digits uses it from 16 channels in and out.
        if isa.rawValue == "avx512" {
            #expect(Kernels.Packed.winogradApplies(g, outputs: outputs) == (shape.channels >= 16 && outputs >= 16))
        }
        let c = shape.channels, oh = g.outputHeight, ow = g.outputWidth, outCount = outputs * oh * ow, kk = kernel * kernel
        let x = random(samples * shape.count, 21), bias = random(outputs, 23)
        for adjoint in [false, true] {
            // adjoint: w is (c, outputs, 3, 3), a layer from `outputs` channels to c, run as its input
            // gradient's convolution: out[o] = Σ_ch x[ch] * w[ch][o] flipped.
            let w = random(outputs * c * kk, adjoint ? 24 : 22)
            var exact = [Double](repeating: 0, count: samples * outCount)
            for n in 0..<samples {
                for o in 0..<outputs {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum = adjoint ? 0 : Double(bias[o])
                            for ch in 0..<c {
                                for ky in 0..<kernel {
                                    for kx in 0..<kernel {
                                        let iy = oy + ky - padding, ix = ox + kx - padding
                                        guard iy >= 0, iy < shape.height, ix >= 0, ix < shape.width else { continue }
                                        let weight = adjoint ? w[((ch * outputs + o) * kernel + kernel - 1 - ky) * kernel + kernel - 1 - kx]
                                            : w[((o * c + ch) * kernel + ky) * kernel + kx]
                                        sum += Double(weight) * Double(x[n * shape.count + (ch * shape.height + iy) * shape.width + ix])
                                    }
                                }
                            }
                            exact[n * outCount + (o * oh + oy) * ow + ox] = sum
                        }
                    }
                }
            }
            let u = FloatBuffer(capacity: Kernels.Packed.winogradWeightsFloats(m: outputs, k: c, kernel: kernel))
            w.withUnsafeBufferPointer {
                Kernels.Packed.winogradWeights($0.baseAddress!, outputChannels: adjoint ? c : outputs, inputChannels: adjoint ? outputs : c,
                                               kernel: kernel, adjoint: adjoint, into: u.pointer)
            }
            let scratch = FloatBuffer(capacity: Kernels.Packed.winogradScratchFloats(g, m: outputs))
            func run(_ first: Int, _ count: Int, threads: Int) -> [Float] {
                Kernels.useThreads(threads)
                defer { Kernels.useThreads(nil) }
                var out = [Float](repeating: .nan, count: count * outCount)
                x.withUnsafeBufferPointer { xs in
                    bias.withUnsafeBufferPointer { b in
                        out.withUnsafeMutableBufferPointer {
                            Kernels.Packed.winogradConvolve(g, m: outputs, weights: u.pointer, input: xs.baseAddress! + first * shape.count,
                                                            samples: count, bias: adjoint ? nil : b.baseAddress!, output: $0.baseAddress!,
                                                            scratch: scratch.pointer)
                        }
                    }
                }
                return out
            }
            let batch = run(0, samples, threads: 1)
            let worst = zip(batch, exact).map { abs(Double($0) - $1) }.max() ?? .infinity
            // Float sums of K²C products of values in [-1, 1], through transforms with coefficients up to 5
            // (F(2x2, 5x5)'s input transform), so a few times the GEMM's error.
            let bound = 2e-6 * Double(kk * c).squareRoot() * (kernel == 3 ? 4 : 16)
            #expect(worst < bound, "\(shape) k\(kernel) p\(padding) adjoint \(adjoint): error \(worst)")
            #expect(batch.map(\.bitPattern) == run(0, samples, threads: 2).map(\.bitPattern), "\(shape) k\(kernel) p\(padding): threads")
            let last = samples - 1
            #expect(Array(batch[(last * outCount)...]).map(\.bitPattern) == run(last, 1, threads: 2).map(\.bitPattern),
                    "\(shape) k\(kernel) p\(padding): one sample alone")
        }
    }

    @Test func transposedAddTurnsTheMatrixRound() {
        let rows = 37, columns = 21
        let x = random(rows * columns, 7), start = random(rows * columns, 8)
        var y = start
        x.withUnsafeBufferPointer { Kernels.Packed.addTransposed($0.baseAddress!, rows: rows, columns: columns, into: &y) }
        var exact = true
        for i in 0..<rows {
            for j in 0..<columns where y[j * rows + i] != start[j * rows + i] + x[i * columns + j] { exact = false }
        }
        #expect(exact)
    }

    @Test(arguments: [(Shape(channels: 32, height: 14, width: 14), 5, 2), (Shape(channels: 1, height: 28, width: 28), 5, 2),
                      (Shape(channels: 6, height: 14, width: 14), 5, 0), (Shape(channels: 3, height: 40, width: 37), 3, 1),
                      (Shape(channels: 2, height: 9, width: 300), 7, 3), (Shape(channels: 4, height: 5, width: 3), 3, 1),
                      (Shape(channels: 2, height: 13, width: 13), 2, 0)])
    func im2colAndItsAdjointEqualTheReference(shape: Shape, kernel: Int, padding: Int) {
        for isa in KernelTableTests.isas {
            for stride in [1, 2] where shape.height + 2 * padding >= kernel && shape.width + 2 * padding >= kernel {
                im2colAndItsAdjointEqualTheReference(isa, shape: shape, kernel: kernel, stride: stride, padding: padding)
            }
        }
    }

    func im2colAndItsAdjointEqualTheReference(_ isa: Kernels.ISA, shape: Shape, kernel: Int, stride: Int, padding: Int) {
        let g = Kernels.ConvGeometry(channels: shape.channels, height: shape.height, width: shape.width, kernel: kernel,
                                     stride: stride, padding: padding)
        let x = random(shape.count, 4)
        let count = g.patchSize * g.outputPixels
        var fast = [Float](repeating: .nan, count: count), portable = [Float](repeating: .nan, count: count)
        Kernels.withISA(isa) { Kernels.im2col(g, input: x, columns: &fast, rowStride: g.outputPixels, column0: 0) }
        Kernels.withISA(.reference) { Kernels.im2col(g, input: x, columns: &portable, rowStride: g.outputPixels, column0: 0) }
        #expect(fast.map(\.bitPattern) == portable.map(\.bitPattern), "\(isa) stride \(stride)")
        // The adjoint: <im2col(x), c> = <x, col2im(c)> for random c, and the two sets agree.
        let c = random(count, 5)
        var dxFast = [Float](repeating: 0, count: shape.count), dxPortable = dxFast
        Kernels.withISA(isa) { Kernels.col2imAdd(g, columns: c, rowStride: g.outputPixels, column0: 0, inputGradient: &dxFast) }
        Kernels.withISA(.reference) {
            Kernels.col2imAdd(g, columns: c, rowStride: g.outputPixels, column0: 0, inputGradient: &dxPortable)
        }
        let left = zip(fast, c).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let right = zip(x, dxFast).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(left - right) < 1e-3 * max(1, abs(left)))
        #expect(zip(dxFast, dxPortable).allSatisfy { abs($0 - $1) < 1e-5 })
    }

    @Test(arguments: KernelTableTests.isas)
    func maxPoolingEqualsTheReferenceWithTies(isa: Kernels.ISA) {
        for (h, w) in [(28, 28), (14, 14), (10, 10), (7, 9), (2, 40)] {
            let planes = 3
            // Values on a coarse grid so windows hold ties; ties must go to the first element.
            let x = random(planes * h * w, 6).map { ($0 * 3).rounded() }
            let outCount = planes * (h / 2) * (w / 2)
            var yFast = [Float](repeating: .nan, count: outCount), yPortable = yFast
            var iFast = [Int32](repeating: -1, count: outCount), iPortable = iFast
            Kernels.withISA(isa) { Kernels.maxPool2x2(x, &yFast, argmax: &iFast, planes: planes, height: h, width: w) }
            Kernels.withISA(.reference) { Kernels.maxPool2x2(x, &yPortable, argmax: &iPortable, planes: planes, height: h, width: w) }
            #expect(yFast == yPortable, "\(h) x \(w)")
            #expect(iFast == iPortable, "\(h) x \(w)")
            // The ReLU applied inside the pooling equals pooling the rectified input, on both paths.
            let rectifiedInput = x.map { max($0, 0) }
            var yRectified = yFast, iRectified = iFast
            Kernels.withISA(.reference) {
                Kernels.maxPool2x2(rectifiedInput, &yRectified, argmax: &iRectified, planes: planes, height: h, width: w,
                                   rectified: true)
            }
            for backend in [isa, .reference] {
                Kernels.withISA(backend) {
                    Kernels.maxPool2x2(x, &yFast, argmax: &iFast, planes: planes, height: h, width: w, rectify: true)
                }
                #expect(yFast == yRectified, "\(h) x \(w) \(backend)")
                // Masked windows (negative index) may name another zero of the window; they pass nothing.
                #expect(zip(iFast, iRectified).allSatisfy { $0 == $1 || ($0 < 0 && $1 < 0) }, "\(h) x \(w) \(backend)")
            }
        }
    }

    /// Every set's dropout draws KeyedRandom's numbers: draw n's two 32-bit halves, cut to 24 bits,
    /// decide elements 2(n-1) and 2(n-1)+1, for an odd count too; another step gives another mask.
    @Test(arguments: KernelTableTests.isas)
    func dropoutDrawsKeyedRandomNumbers(isa: Kernels.ISA) {
        let shape = Shape(channels: 173, height: 1, width: 1), batch = 3
        let x = random(batch * shape.count, 12)
        func run(_ backend: Kernels.ISA, step: UInt64) -> (y: [UInt32], dx: [UInt32]) {
            let layer = Dropout(name: "d", inputShape: shape, rate: 0.3, layerIndex: 4)
            var input = x
            let y = input.withUnsafeMutableBufferPointer { p in
                Kernels.withISA(backend) {
                    Array(UnsafeBufferPointer(start: layer.forward(p.baseAddress!, batch: batch,
                                                                   context: PassContext(mode: .training, seed: 5, step: step)),
                                              count: batch * shape.count))
                }
            }
            var dY = [Float](repeating: 1, count: batch * shape.count)
            let dx = dY.withUnsafeMutableBufferPointer { p in
                Array(UnsafeBufferPointer(start: layer.backward(p.baseAddress!, batch: batch, needsInputGradient: true)!,
                                          count: batch * shape.count))
            }
            return (y.map(\.bitPattern), dx.map(\.bitPattern))
        }
        let fast = run(isa, step: 7)
        // The mask, from KeyedRandom itself.
        var random = KeyedRandom(seed: 5, purpose: .dropout, 7, 0, 4)
        let count = batch * shape.count, threshold = UInt32(Double(Float(1) - 0.3) * 16_777_216.0), scale = 1 / (Float(1) - 0.3)
        var mask = [Float](repeating: 0, count: count)
        var i = 0
        while i < count {
            let bits = random.next()
            mask[i] = UInt32(truncatingIfNeeded: bits & 0xFF_FFFF) < threshold ? scale : 0
            if i + 1 < count { mask[i + 1] = UInt32(truncatingIfNeeded: (bits >> 32) & 0xFF_FFFF) < threshold ? scale : 0 }
            i += 2
        }
        #expect(fast.y == zip(x, mask).map { ($0 * $1).bitPattern })
        #expect(fast.dx == mask.map(\.bitPattern))
        #expect(run(.reference, step: 7).dx == fast.dx)
        let kept = fast.dx.filter { $0 != 0 }.count
        #expect(kept > 300 && kept < 420, "kept \(kept) of 519 at rate 0.3")
        #expect(run(isa, step: 8).dx != fast.dx)
    }

    @Test(arguments: KernelTableTests.isas)
    func batchNormPassesEqualTheReference(isa: Kernels.ISA) {
        let batch = 5, channels = 3, pixels = 37, stride = channels * pixels
        let x = random(batch * stride, 7), dy = random(batch * stride, 8)
        for backendPair in [(isa, Kernels.ISA.reference)] {
            for ch in 0..<channels {
                let results = [backendPair.0, backendPair.1].map { backend -> ([Float], [Float], [Float], [Double]) in
                    Kernels.withISA(backend) { x.withUnsafeBufferPointer { xp in
                        let first = xp.baseAddress! + ch * pixels
                        let moments = Kernels.channelMoments(first, batch: batch, pixels: pixels, stride: stride)
                        let mean = Float(moments.mean)
                        let xhat = UnsafeMutablePointer<Float>.allocate(capacity: 3 * batch * stride)
                        defer { xhat.deallocate() }
                        xhat.initialize(repeating: 0, count: 3 * batch * stride)
                        let y = xhat + batch * stride, dx = y + batch * stride, at = ch * pixels
                        Kernels.channelNormalize(first, xhat: xhat + at, y: y + at, batch: batch, pixels: pixels, stride: stride,
                                                 mean: mean, invStd: 1.7, gamma: 0.9, beta: 0.2)
                        let sums = dy.withUnsafeBufferPointer { dyp in
                            Kernels.channelGradientSums(dyp.baseAddress! + at, xhat: xhat + at, batch: batch, pixels: pixels,
                                                        stride: stride)
                        }
                        dy.withUnsafeBufferPointer { dyp in
                            Kernels.channelInputGradient(dyp.baseAddress! + at, xhat: xhat + at, dx: dx + at, batch: batch,
                                                         pixels: pixels, stride: stride, k: 0.3, m: Float(batch * pixels),
                                                         sumDy: Float(sums.sumDy), sumDyXhat: Float(sums.sumDyXhat))
                        }
                        let n = batch * stride
                        return (Array(UnsafeBufferPointer(start: xhat, count: n)), Array(UnsafeBufferPointer(start: y, count: n)),
                                Array(UnsafeBufferPointer(start: dx, count: n)), [moments.mean, moments.variance, sums.sumDy, sums.sumDyXhat])
                    } }
                }
                let (a, b) = (results[0], results[1])
                #expect(zip(a.3, b.3).allSatisfy { abs($0 - $1) < 1e-4 * max(1, abs($0)) })
                #expect(zip(a.0 + a.1, b.0 + b.1).allSatisfy { abs($0 - $1) < 1e-5 })
                #expect(zip(a.2, b.2).allSatisfy { abs($0 - $1) < 1e-3 })
            }
        }
    }

    @Test(arguments: KernelTableTests.isas,
          [OptimizerKind.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8), .adamW(beta1: 0.9, beta2: 0.99, epsilon: 1e-6),
           .sgd(momentum: 0.9, nesterov: false), .sgd(momentum: 0.8, nesterov: true)])
    func optimizerUpdatesEqualTheReference(isa: Kernels.ISA, kind: OptimizerKind) throws {
        func run(_ backend: Kernels.ISA) throws -> [Float] {
            // 7,840 decayed weights and 10 biases: many 16-lane runs and masked tails.
            let network = Network(spec: try ModelSpec(parsing: "flatten-dense10"), seed: 5)
            let optimizer = Optimizer(kind: kind, store: network.store, weightDecay: 0.01)
            for step in 0..<3 {
                let g = random(network.store.parameterCount, UInt64(10 + step))
                for i in 0..<g.count { network.store.gradients[i] = g[i] }
                Kernels.withISA(backend) { optimizer.step(learningRate: 0.05) }
            }
            return Array(network.store.parameterBuffer)
        }
        let fast = try run(isa), portable = try run(.reference)
        #expect(zip(fast, portable).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
    }

    @Test(arguments: KernelTableTests.isas)
    func oneMomentPassEqualsTheTwoPassStatistics(isa: Kernels.ISA) {
        // Offset data (mean 5, spread 0.01) is where a naive one-pass variance loses its digits.
        for (offset, spread) in [(Float(0), Float(1)), (5, 0.01), (-300, 2)] {
            let batch = 7, channels = 3, pixels = 49, stride = channels * pixels
            let x = random(batch * stride, 11).map { offset + spread * $0 }
            x.withUnsafeBufferPointer { xp in
                for ch in 0..<channels {
                    let first = xp.baseAddress! + ch * pixels
                    let fast = Kernels.withISA(isa) { Kernels.channelMoments(first, batch: batch, pixels: pixels, stride: stride) }
                    // Two passes in double: the mean, then the squared deviations from it.
                    var total = 0.0
                    for n in 0..<batch { for p in 0..<pixels { total += Double(first[n * stride + p]) } }
                    let mean = total / Double(batch * pixels)
                    var squares = 0.0
                    for n in 0..<batch { for p in 0..<pixels { squares += (Double(first[n * stride + p]) - mean) * (Double(first[n * stride + p]) - mean) } }
                    let portable = (mean: mean, variance: squares / Double(batch * pixels))
                    #expect(abs(fast.mean - portable.mean) <= 1e-6 * max(1, abs(portable.mean)))
                    #expect(abs(fast.variance - portable.variance) <= 1e-4 * portable.variance, "offset \(offset) spread \(spread)")
                }
            }
        }
    }
}
