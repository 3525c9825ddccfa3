import Testing
@testable import NeuralNet

/// Specs built for inputs and class counts other than MNIST's.
@Suite struct ModelSpecShapeTests {
    @Test func presetsEndInOneLogitPerClass() throws {
        let input = Shape(channels: 1, height: 20, width: 24)
        for preset in ModelSpec.presets {
            let spec = try ModelSpec.named(preset.name, input: input, classes: 5)
            #expect(spec.layers.last == .dense(outputs: 5), "\(preset.name)")
            #expect(spec.input == input && spec.classes == 5)
            let network = Network(spec: spec, seed: 1)
            #expect(network.classes == 5 && network.layers.last?.outputShape == .vector(5))
        }
        // MNIST's presets are unchanged.
        #expect(try ModelSpec.named("default").description == ModelSpec.presets.first { $0.name == "default" }!.spec)
    }

    @Test func aWrittenSpecMustFitTheData() throws {
        #expect(throws: ModelSpecError.self) { try ModelSpec.named("flatten-dense10", classes: 5) }
        let spec = try ModelSpec.named("flatten-dense47", input: Shape(channels: 1, height: 28, width: 28), classes: 47)
        #expect(spec.classes == 47)
        // A pool that fits 28x28 does not fit a 3x3 input.
        #expect(throws: ModelSpecError.self) {
            try ModelSpec.named("conv8k3-pool4-flatten-dense2", input: Shape(channels: 1, height: 3, width: 3), classes: 2)
        }
    }
}
