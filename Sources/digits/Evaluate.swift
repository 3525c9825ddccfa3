import ArgumentParser
import Collective
import Datasets
import ImageIO
import NeuralNet
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a checkpoint on the 10,000 MNIST test images: accuracy, loss, per-class precision and recall, confusion matrix.",
        discussion: "Runs under mpirun too: the test set is split across ranks and the counts are summed."
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var checkpointOption: CheckpointOption
    @Flag(help: "Print the results as one JSON object.") var json = false
    @Option(help: "Write a PNG grid of the misclassified test images, each labelled true>predicted and confidence.")
    var misclassified: String?
    @OptionGroup var kernel: KernelOptions
    @Option(help: "Evaluate only the first N test images.") var limit: Int?
    @Option(help: "Also write the logits of the images evaluated (float32, images x 10, in test-set order, before the softmax) to this .npy file; one process, not under mpirun.")
    var logitsOut: String?

    func run() throws {
        try runAsRank { communicator in
            try startKernels(threads: kernel.threads)
            if logitsOut != nil && communicator.size > 1 { throw CommandError("--logits-out writes the logits of one process: run evaluate without mpirun") }
            let start = monotonicSeconds()
            let model = try TrainedModel(checkpoint: try checkpointOption.file())
            var part = try MNIST.load(.test, from: data.dataDir,
                                      shard: communicator.size > 1 ? ShardSpec(rank: communicator.rank, worldSize: communicator.size, seed: 1) : nil)
            if let limit {
                guard limit > 0 else { throw CommandError("--limit must be at least 1") }
                part = part.keeping { $0 < limit }
            }
            let t0 = monotonicSeconds()
            var report = ClassificationReport.run(model, on: part)
            let evaluationSeconds = monotonicSeconds() - t0
            try report.combine(over: communicator)
            var slowest = [evaluationSeconds]
            try communicator.allreduceMax(&slowest)
            guard communicator.isRoot else { return }
            let throughput = Double(report.count) / max(slowest[0], 1e-9)
            if json {
                print(jsonReport(report, model: model, ranks: communicator.size, throughput: throughput))
            } else {
                printReport(report, model: model, ranks: communicator.size, throughput: throughput, seconds: monotonicSeconds() - start)
            }
            if let misclassified {
                let full = try MNIST.load(.test, from: data.dataDir)
                try writeMissGrid(report.misses, test: full, to: misclassified)
                if !json { print("\nwrote \(misclassified): \(report.misses.count) misclassified test images, labelled true>predicted and confidence") }
            }
            if let logitsOut {
                let logits = NumpyArray.float32(model.logits(of: part), shape: [part.count, model.network.classes])
                try logits.withUnsafeBytes { try writeAtomically($0, to: logitsOut, durable: false) }
                if !json { print("\nwrote \(logitsOut): the logits of \(part.count) test images, float32 (\(part.count), 10)") }
            }
        }
    }

    /// Tiles of 2x-magnified digits, each with "true>predicted confidence%" beneath.
    func writeMissGrid(_ misses: [(id: Int, label: Int, predicted: Int, confidence: Float)], test: Dataset, to path: String) throws {
        let columns = 12, zoom = 2, tile = 28 * zoom, labelHeight = 14, gap = 4
        let rows = max(1, (misses.count + columns - 1) / columns)
        var image = Image8(width: columns * (tile + gap) + gap, height: rows * (tile + labelHeight + gap) + gap, channels: 3, fill: 40)
        var cell = [Float](repeating: 0, count: 784)
        for (n, miss) in misses.enumerated() {
            let x = gap + (n % columns) * (tile + gap), y = gap + (n / columns) * (tile + labelHeight + gap)
            for p in 0..<784 { cell[p] = Float(test.images[miss.id * 784 + p]) }
            image.place(cell, tileWidth: 28, tileHeight: 28, x: x, y: y, zoom: zoom)
            image.drawText("\(miss.label)>\(miss.predicted) \(Int((100 * miss.confidence).rounded()))%", x: x, y: y + tile + 3,
                           scale: 2, color: (255, 200, 60))
        }
        try image.writePNG(to: path)
    }
}

/// A number for JSON output: non-finite values (a diverged model's loss) as null, which JSON has,
/// instead of nan or inf, which it does not.
func jsonNumber(_ value: Double) -> String { value.isFinite ? "\(value)" : "null" }

func jsonEscape(_ text: String) -> String {
    var out = ""
    for ch in text.unicodeScalars {
        switch ch {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if ch.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(ch.value, radix: 16).count) + String(ch.value, radix: 16) }
            else { out.unicodeScalars.append(ch) }
        }
    }
    return out
}

extension Evaluate {

    private func jsonReport(_ report: ClassificationReport, model: TrainedModel, ranks: Int, throughput: Double) -> String {
        var fields = ["\"checkpoint\":\"\(jsonEscape(model.path))\"", "\"model\":\"\(jsonEscape(model.metadata["model"] ?? ""))\"",
                      "\"images\":\(report.count)", "\"accuracy\":\(jsonNumber(report.accuracy))", "\"loss\":\(jsonNumber(report.loss))",
                      "\"ranks\":\(ranks)", "\"images_per_second\":\(jsonNumber(throughput))"]
        fields.append("\"precision\":[" + (0..<10).map { jsonNumber(report.precision($0)) }.joined(separator: ",") + "]")
        fields.append("\"recall\":[" + (0..<10).map { jsonNumber(report.recall($0)) }.joined(separator: ",") + "]")
        fields.append("\"confusion\":[" + report.confusion.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",") + "]")
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func printReport(_ report: ClassificationReport, model: TrainedModel, ranks: Int, throughput: Double, seconds: Double) {
        print("checkpoint \(model.path)  (model \(model.metadata["model"] ?? "?"), epoch \(model.metadata["epoch"] ?? "?"), step \(model.metadata["global_step"] ?? "?"))")
        print("\(report.count) test images: accuracy \(fixed(100 * report.accuracy, 2))% (\(report.count - report.correct) wrong), loss \(fixed(report.loss, 4))")
        print("\(ranks) rank(s), \(fixed(throughput, 0)) images/s, \(fixed(seconds, 2)) s in all")
        print("")
        print(pad("class", 6, right: false) + pad("precision", 10) + pad("recall", 9) + pad("images", 8))
        for c in 0..<10 {
            print(pad(String(c), 6, right: false) + pad(fixed(100 * report.precision(c), 2) + "%", 10)
                  + pad(fixed(100 * report.recall(c), 2) + "%", 9) + pad(String(report.confusion[c].reduce(0, +)), 8))
        }
        print("")
        print("confusion matrix (rows: true digit, columns: predicted)")
        print("      " + (0..<10).map { pad(String($0), 6) }.joined())
        for r in 0..<10 { print(pad(String(r), 6, right: false) + report.confusion[r].map { pad(String($0), 6) }.joined()) }
    }
}
