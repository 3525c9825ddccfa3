import ArgumentParser
import Collective
import Datasets
import ImageIO
import NeuralNet
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a checkpoint on the test images of --data-dir (MNIST's 10,000 by default): accuracy, loss, per-class precision and recall, confusion matrix.",
        discussion: """
        Runs under mpirun too: the test set is split across ranks and the counts are summed. Several \
        --checkpoint options make an ensemble: their probabilities are averaged, and each member's own \
        accuracy is printed beside the ensemble's; --tta averages over shifted copies of each image as well \
        (docs/accuracy.md).
        """
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var checkpointOption: EnsembleOptions
    @Flag(help: "Print the results as one JSON object.") var json = false
    @Option(help: "Write a PNG grid of the misclassified test images, each labelled true>predicted and confidence.")
    var misclassified: String?
    @Flag(help: "With --misclassified: beside each misclassified image, its heat map for the predicted class (Grad-CAM, HiResCAM where that is 0, or input-gradient saliency for a model without convolutions; see predict --explain).")
    var explainMisclassified = false
    @OptionGroup var kernel: KernelOptions
    @Option(help: "Evaluate only the first N test images.") var limit: Int?
    @Option(help: "Also write the logits of the images evaluated (float32, images x classes, in test-set order, before the softmax) to this .npy file; one process, not under mpirun. For an ensemble or with --tta, the natural log of the averaged probabilities instead (their softmax is those probabilities).")
    var logitsOut: String?
    @Flag(help: "Instead: accuracy under each perturbation a user's image may have (thick or thin strokes, blur, low contrast, noise, low resolution, off centre, rotated, inverted), fed straight in and through predict's preprocessing (docs/robustness.md).")
    var robustness = false
    @Option(help: "With --robustness (implied): also draw the accuracies as an SVG bar chart in this file.")
    var robustnessPlot: String?
    @Option(help: "With --robustness (implied): also write a PNG of the first 8 test images under each perturbation, each beside what predict's preprocessing makes of it.")
    var robustnessExamples: String?

    func validate() throws {
        if explainMisclassified && misclassified == nil { throw ValidationError("--explain-misclassified draws into the --misclassified picture: give --misclassified FILE.png too") }
        if explainMisclassified { try checkpointOption.requireOneModel(for: "--explain-misclassified") }
    }

    func run() throws {
        try runAsRank { communicator in
            try startKernels(threads: kernel.threads)
            if logitsOut != nil && communicator.size > 1 { throw CommandError("--logits-out writes the logits of one process: run evaluate without mpirun") }
            let start = monotonicSeconds()
            let ensemble = try checkpointOption.ensemble()
            let model = ensemble.members[0]   // every member takes its image size and classes
            var part = try testSet(for: model, shard: communicator.size > 1
                                   ? ShardSpec(rank: communicator.rank, worldSize: communicator.size, seed: 1) : nil)
            if let limit {
                guard limit > 0 else { throw CommandError("--limit must be at least 1") }
                part = part.keeping { $0 < limit }
            }
            if robustness || robustnessPlot != nil || robustnessExamples != nil { try runRobustness(model: model, test: part, communicator: communicator); return }
            let t0 = monotonicSeconds()
            var evaluation = EnsembleReport.run(ensemble, on: part)
            let evaluationSeconds = monotonicSeconds() - t0
            try evaluation.combine(over: communicator)
            let report = evaluation.ensemble
            var slowest = [evaluationSeconds]
            try communicator.allreduceMax(&slowest)
            guard communicator.isRoot else { return }
            let throughput = Double(report.count) / max(slowest[0], 1e-9)
            if json {
                print(jsonReport(report, model: model, ensemble: evaluation, of: ensemble, ranks: communicator.size, throughput: throughput))
            } else {
                printReport(report, model: model, ensemble: evaluation, of: ensemble, ranks: communicator.size, throughput: throughput,
                            seconds: monotonicSeconds() - start)
            }
            if let misclassified {
                let full = try testSet(for: model, shard: nil)
                let pictures = explainMisclassified ? ExplanationPictures(model: model) : nil
                if let pictures { try pictures.writeMissGrid(report.misses, test: full, to: misclassified) }
                else { try writeMissGrid(report.misses, test: full, to: misclassified) }
                if !json { print("\nwrote \(misclassified): \(report.misses.count) misclassified test images, labelled true>predicted and confidence"
                                 + (pictures.map { ", each beside its heat map: \($0.methodSentence)" } ?? "")) }
            }
            if let logitsOut {
                let values = ensemble.isSingleModel ? model.logits(of: part) : ensemble.logProbabilities(of: part)
                let logits = NumpyArray.float32(values, shape: [part.count, model.network.classes])
                try logits.withUnsafeBytes { try writeAtomically($0, to: logitsOut, durable: false) }
                let what = ensemble.isSingleModel ? "the logits" : "the log of the averaged probabilities (log-softmax logits)"
                if !json { print("\nwrote \(logitsOut): \(what) of \(part.count) test images, float32 (\(part.count), \(model.network.classes))") }
            }
        }
    }

    /// The test split of --data-dir (this rank's shard), which must be the model's image size and
    /// class count; an unknown set gets its notice.
    func testSet(for model: TrainedModel, shard: ShardSpec?) throws -> Dataset {
        let set = try IDXSet.load(from: data.dataDir, train: .skip, test: shard.map { .shard($0) } ?? .all)
        guard let test = set.test else { throw CommandError("\(data.dataDir): no test set read") }
        if shard == nil || shard?.rank == 0, !json, let notice = set.notice { print(notice) }
        guard test.height == model.input.height, test.width == model.input.width else {
            throw CommandError("\(test.imagesPath): images are \(test.height)x\(test.width), but \(model.path) "
                               + "was trained on \(model.input.height)x\(model.input.width)")
        }
        guard test.classCount <= model.classNames.count else {
            throw CommandError("\(test.labelsPath): holds label \(test.classCount - 1), but \(model.path) "
                               + "knows \(model.classNames.count) classes")
        }
        return test
    }

    /// Tiles of 2x-magnified images, each with "true>predicted confidence%" beneath.
    func writeMissGrid(_ misses: [MissedImage], test: Dataset, to path: String) throws {
        try writeTiles(of: misses, from: test, columns: 12, tileWidth: max(test.width * 2, 56), to: path) { image, cell, x, y in
            image.place(cell, tileWidth: test.width, tileHeight: test.height, x: x, y: y, zoom: 2)
        }
    }
}

/// A misclassified test image: its index in the test set, its label, the answer and its probability.
typealias MissedImage = (id: Int, label: Int, predicted: Int, confidence: Float)

/// The misclassified grid's layout: `columns` tiles `tileWidth` wide and twice the image's height,
/// each captioned "true>predicted confidence%" beneath; `draw` fills a tile from the image's pixels
/// (0-255) at its top-left corner (x, y). Written as PNG to `path`.
func writeTiles(of misses: [MissedImage], from test: Dataset, columns: Int, tileWidth: Int, to path: String,
                draw: (inout Image8, [Float], Int, Int) -> Void) throws {
    let labelHeight = 14, gap = 4, tileH = 2 * test.height, pixels = test.pixelsPerImage
    let rows = max(1, (misses.count + columns - 1) / columns)
    var image = Image8(width: columns * (tileWidth + gap) + gap, height: rows * (tileH + labelHeight + gap) + gap, channels: 3, fill: 40)
    var cell = [Float](repeating: 0, count: pixels)
    for (n, miss) in misses.enumerated() {
        let x = gap + (n % columns) * (tileWidth + gap), y = gap + (n / columns) * (tileH + labelHeight + gap)
        for p in 0..<pixels { cell[p] = Float(test.images[miss.id * pixels + p]) }
        draw(&image, cell, x, y)
        image.drawText("\(miss.label)>\(miss.predicted) \(Int((100 * miss.confidence).rounded()))%", x: x, y: y + tileH + 3,
                       scale: 2, color: (255, 200, 60))
    }
    try image.writePNG(to: path)
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

    private func jsonReport(_ report: ClassificationReport, model: TrainedModel, ensemble evaluation: EnsembleReport, of ensemble: Ensemble,
                            ranks: Int, throughput: Double) -> String {
        var fields = ensemble.isSingleModel
            ? ["\"checkpoint\":\"\(jsonEscape(model.path))\"", "\"model\":\"\(jsonEscape(model.metadata["model"] ?? ""))\"",
               "\"weights\":\"\(model.weightsUsed)\""]
            : ensembleJSONFields(ensemble, members: evaluation.members)
        fields += ["\"images\":\(report.count)", "\"accuracy\":\(jsonNumber(report.accuracy))", "\"loss\":\(jsonNumber(report.loss))",
                      "\"ranks\":\(ranks)", "\"images_per_second\":\(jsonNumber(throughput))"]
        let classes = report.confusion.count
        fields.append("\"classes\":[" + model.classNames.map { "\"\(jsonEscape($0))\"" }.joined(separator: ",") + "]")
        fields.append("\"precision\":[" + (0..<classes).map { jsonNumber(report.precision($0)) }.joined(separator: ",") + "]")
        fields.append("\"recall\":[" + (0..<classes).map { jsonNumber(report.recall($0)) }.joined(separator: ",") + "]")
        fields.append("\"confusion\":[" + report.confusion.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }.joined(separator: ",") + "]")
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func printReport(_ report: ClassificationReport, model: TrainedModel, ensemble evaluation: EnsembleReport, of ensemble: Ensemble,
                             ranks: Int, throughput: Double, seconds: Double) {
        if ensemble.members.count == 1 {
            print("checkpoint \(model.path)  (model \(model.metadata["model"] ?? "?"), epoch \(model.metadata["epoch"] ?? "?"), step \(model.metadata["global_step"] ?? "?")"
                  + (model.weightsUsed == "ema" ? ", the weight average" : "") + ")")
        }
        for line in ensembleDescription(ensemble, members: evaluation.members) { print(line) }
        print("\(report.count) test images: accuracy \(fixed(100 * report.accuracy, 2))% (\(report.count - report.correct) wrong), loss \(fixed(report.loss, 4))")
        print("\(ranks) rank(s), \(fixed(throughput, 0)) images/s, \(fixed(seconds, 2)) s in all")
        print("")
        let classes = report.confusion.count
        let width = max(6, (model.classNames.map(\.count).max() ?? 0) + 2)
        print(pad("class", width, right: false) + pad("precision", 10) + pad("recall", 9) + pad("images", 8))
        for c in 0..<classes {
            print(pad(model.classNames[c], width, right: false) + pad(fixed(100 * report.precision(c), 2) + "%", 10)
                  + pad(fixed(100 * report.recall(c), 2) + "%", 9) + pad(String(report.confusion[c].reduce(0, +)), 8))
        }
        print("")
        print("confusion matrix (rows: true class, columns: predicted)")
        print("      " + (0..<classes).map { pad(String($0), 6) }.joined())
        for r in 0..<classes { print(pad(String(r), 6, right: false) + report.confusion[r].map { pad(String($0), 6) }.joined()) }
    }
}
