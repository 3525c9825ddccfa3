import CounterRNG
import Testing
@testable import NeuralNet

/// Conv2D's algorithms (`ConvolutionAlgorithms`): which each geometry gets on each kernel set this
/// CPU runs, and that a layer whose passes run under different kernel sets (and thread counts) gives
/// the bits of a layer that only ever ran under the last one.
@Suite struct ConvolutionAlgorithmTests {
    struct Geometry: CustomTestStringConvertible, Sendable {
        let channels, outputs, kernel, stride, padding: Int
        var shape: Shape { Shape(channels: channels, height: 7, width: 6) }
        var testDescription: String { "\(channels) -> \(outputs) k\(kernel) s\(stride) p\(padding)" }
    }

    /// Winograd where a set has it; implicit columns and W'; a valid layer (transposed input
    /// gradient); a strided one (explicit columns, transposed input gradient).
    static let geometries = [Geometry(channels: 16, outputs: 16, kernel: 3, stride: 1, padding: 1),
                             Geometry(channels: 2, outputs: 3, kernel: 3, stride: 1, padding: 1),
                             Geometry(channels: 2, outputs: 3, kernel: 3, stride: 1, padding: 0),
                             Geometry(channels: 3, outputs: 4, kernel: 5, stride: 2, padding: 2)]

    func random(_ count: Int, _ seed: UInt64) -> [Float] {
        var r = KeyedRandom(seed: seed, purpose: .test)
        return (0..<count).map { _ in r.nextUniform(-1, 1) }
    }

    func layer(_ g: Geometry) -> (Conv2D, ParameterStore) {
        let store = ParameterStore()
        let layer = Conv2D(name: "c", inputShape: g.shape, outputChannels: g.outputs, kernelSize: g.kernel, stride: g.stride,
                           padding: g.padding, store: store)
        store.seal(seed: 5)
        return (layer, store)
    }

    /// Output, input gradient and parameter gradients of one forward and backward pass, as bits.
    func pass(_ layer: Conv2D, _ store: ParameterStore, batch: Int) -> [UInt32] {
        store.zeroGradients()
        var x = random(batch * layer.inputShape.count, 1), dY = random(batch * layer.outputShape.count, 2)
        return x.withUnsafeMutableBufferPointer { xp in
            let y = layer.forward(xp.baseAddress!, batch: batch, context: PassContext(mode: .training))
            let output = Array(UnsafeBufferPointer(start: y, count: dY.count))
            return dY.withUnsafeMutableBufferPointer { dp in
                let dx = layer.backward(dp.baseAddress!, batch: batch, needsInputGradient: true)!
                let inputGradient = Array(UnsafeBufferPointer(start: dx, count: xp.count))
                return (output + inputGradient + Array(store.gradientBuffer)).map(\.bitPattern)
            }
        }
    }

    @Test(arguments: Kernels.availableISAs, ConvolutionAlgorithmTests.geometries)
    func eachGeometryGetsItsAlgorithms(isa: Kernels.ISA, geometry: Geometry) {
        Kernels.withISA(isa) {
            let (conv, _) = layer(geometry)
            let chosen = conv.algorithms(), g = conv.geometry
            let winograd = Kernels.Packed.winogradApplies(g, outputs: geometry.outputs)
            #expect((chosen.forward is WinogradConvolution) == winograd)
            #expect((chosen.inputGradient is WinogradConvolution) == winograd)
            if isa == .reference { #expect(!winograd) }
            #expect(chosen.weightGradient.columns.isImplicit == (Kernels.Packed.columnsFloats(g) > 0))
            if geometry.stride > 1 {
                #expect(!chosen.weightGradient.columns.isImplicit)
                #expect((chosen.forward as? ColumnsConvolution)?.columns.isImplicit == false)
            }
            // The input gradient of a valid or strided layer goes through the columns and col2im.
            let sizeKept = geometry.stride == 1 && 2 * geometry.padding == geometry.kernel - 1
            #expect((chosen.inputGradient is TransposedConvolution) == !sizeKept)
            #expect(conv.algorithms() === chosen)
        }
    }

    @Test(arguments: ConvolutionAlgorithmTests.geometries)
    func aLayerFollowsTheKernelSetOfEachPass(geometry: Geometry) {
        defer { Kernels.useThreads(nil) }
        for first in Kernels.availableISAs {
            for last in Kernels.availableISAs where last != first {
                let (switched, switchedStore) = layer(geometry), (fresh, freshStore) = layer(geometry)
                Kernels.useThreads(1)
                _ = Kernels.withISA(first) { pass(switched, switchedStore, batch: 3) }
                Kernels.useThreads(2)
                let after = Kernels.withISA(last) { pass(switched, switchedStore, batch: 3) }
                let alone = Kernels.withISA(last) { pass(fresh, freshStore, batch: 3) }
                #expect(after == alone, "\(geometry.testDescription): \(first) then \(last)")
            }
        }
    }
}
