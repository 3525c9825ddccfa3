import ArgumentParser
import Training

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint: metadata, parameter count, tensors with shapes, and the checksum verdict.",
        discussion: "Exits non-zero when the file is not a readable, intact digits checkpoint of a model evaluate can rebuild: the checksums, the model spec, every tensor the spec needs with its shape, no overlapping tensors, no NaN or infinite weights."
    )

    @Argument(help: "A .safetensors checkpoint written by digits train, a checkpoint directory (its newest), or its latest file.")
    var checkpoint: String = CheckpointOption.defaultPath

    func run() throws {
        try reportingErrors {
            let checkpoint = try resolveCheckpoint(self.checkpoint)
            let (tensors, metadata) = try CheckpointStore.read(checkpoint)
            // What evaluate and predict check: the spec parses and every tensor it needs is there, finite, with its shape.
            let model = try TrainedModel(checkpoint: checkpoint)
            print("checkpoint \(checkpoint)")
            print("checksums: header and tensor bytes verified (tensor_sha256 \(metadata["tensor_sha256"] ?? "?"))")
            print("model: \(metadata["model"] ?? "?") rebuilt; its \(model.network.store.parameterEntries.count + model.network.store.bufferEntries.count) tensors present with their shapes, all finite")
            print("")
            let keys = metadata.keys.filter { $0 != "tensor_sha256" && $0 != "header_sha256" }.sorted()
            let width = keys.map(\.count).max() ?? 0
            for key in keys {
                // A value of several lines (class_names: one a line) continues under its first.
                let value = (metadata[key] ?? "").split(separator: "\n", omittingEmptySubsequences: false)
                    .joined(separator: "\n" + String(repeating: " ", count: width + 2))
                print(pad(key, width, right: false) + "  " + value)
            }
            print("")
            let parameters = tensors.filter { !$0.name.hasPrefix("optimizer.") && !$0.name.contains("running_") }
            let count = parameters.reduce(0) { $0 + $1.values.count }
            print("\(tensors.count) tensors, \(count) trainable parameters")
            let nameWidth = tensors.map(\.name.count).max() ?? 0
            for t in tensors {
                print("  " + pad(t.name, nameWidth, right: false) + "  F32 " + pad("[" + t.shape.map(String.init).joined(separator: ", ") + "]", 18, right: false)
                      + pad(String(t.values.count), 9))
            }
        }
    }
}
