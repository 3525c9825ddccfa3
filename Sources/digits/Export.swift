import ArgumentParser
import Foundation
import NeuralNet
import ONNXExport
import Training

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a checkpoint's network as a standard model file (ONNX) for other runtimes.",
        discussion: """
        onnx: the network in evaluation mode (BatchNorm as BatchNormalization nodes with its running statistics, \
        dropout left out), ONNX opset \(ONNXExport.opsetVersion), IR version \(ONNXExport.irVersion).
        Input \(ONNXExport.inputDescription); N, the batch size, is free.
        Output logits: float (N, classes), one row per image, before the softmax (10 classes for MNIST).
        Parameters keep their checkpoint names (layers.0.weight, ...); nodes are named after their layers.
        """
    )

    @OptionGroup var checkpointOption: CheckpointOption
    @Option(help: "The file format.") var format: ExportFormat = .onnx
    @Argument(help: "The file to write (replaced whole, never left half-written).") var output: String

    func run() throws {
        try reportingErrors {
            let checkpoint = try checkpointOption.file()
            let model = try TrainedModel(checkpoint: checkpoint, weights: checkpointOption.weights)
            switch format {
            case .onnx:
                var metadata = ["checkpoint": (checkpoint as NSString).lastPathComponent, "digits_version": digitsVersion]
                for key in ["epoch", "global_step"] { metadata[key] = model.metadata[key] }
                let bytes: [UInt8]
                do {
                    bytes = try ONNXExport.serializedModel(of: model.network, producerVersion: digitsVersion, metadata: metadata)
                    try bytes.withUnsafeBytes { try writeAtomically($0, to: output, durable: false) }
                } catch {
                    throw CommandError("\(output): not written: \(error)")
                }
                print("wrote \(output) (\(bytes.count) bytes): ONNX opset \(ONNXExport.opsetVersion), model \(model.network.spec), "
                      + "\(model.network.parameterCount) parameters; input image (N, 1, \(model.network.spec.input.height), \(model.network.spec.input.width)) float, "
                      + "pixel values 0-255; output logits (N, \(model.network.spec.classes))")
            }
        }
    }
}
