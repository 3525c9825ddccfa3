import Augmentation
import Collective
import Datasets
import ImageIO
import NeuralNet
import Training

/// `digits evaluate --robustness`: a checkpoint's accuracy on the test images under each
/// `Perturbation`, fed two ways: the perturbed image straight in (as MNIST's test images go), and
/// through predict's preprocessing (`DigitPreprocessor.prepare`, as a user's image goes).
struct RobustnessReport {
    /// How a perturbed image reaches the network.
    enum Feed: String, CaseIterable {
        /// The perturbed HxW bytes, normalised as in training.
        case raw
        /// The perturbed bytes as a grey image through `DigitPreprocessor.prepare`, as `digits predict` does.
        case preprocessed
    }

    /// The counts of one perturbation; they add up across ranks.
    struct Row {
        var perturbation: Perturbation
        /// Correct answers per feed (`raw` nil when the perturbation means nothing straight in).
        var correct: [Feed: Int]
        /// Images the preprocessing refused (no ink found): counted as wrong.
        var refused: Int
    }

    var rows: [Row]
    /// Images per perturbation and feed.
    var count: Int

    func accuracy(_ row: Row, _ feed: Feed) -> Double? {
        guard let correct = row.correct[feed], count > 0 else { return nil }
        return Double(correct) / Double(count)
    }

    /// The perturbation (not `clean`) with the lowest accuracy through `feed`.
    func worst(_ feed: Feed) -> (perturbation: Perturbation, accuracy: Double)? {
        rows.filter { $0.perturbation != .clean }
            .compactMap { row in accuracy(row, feed).map { (row.perturbation, $0) } }
            .min { $0.1 < $1.1 }
    }

    /// Scores `model` on every image of `test` under each perturbation, both feeds, in batches.
    static func run(_ model: TrainedModel, on test: Dataset, perturbations: [Perturbation] = Perturbation.allCases,
                    batchSize: Int = 500) -> RobustnessReport {
        let h = test.height, w = test.width, pixels = test.pixelsPerImage, classes = model.network.classes
        let table = InputNormalizer().table
        let rawInput = FloatBuffer(capacity: batchSize * pixels), preparedInput = FloatBuffer(capacity: batchSize * pixels)
        var perturbed = [UInt8](repeating: 0, count: pixels)
        var scratch = [Float](repeating: 0, count: 3 * pixels)
        var grey = GreyImage(width: w, height: h, values: [Float](repeating: 0, count: pixels))
        var readable = [Bool](repeating: true, count: batchSize)
        var rows = [Row]()
        for perturbation in perturbations {
            var row = Row(perturbation: perturbation, correct: [.preprocessed: 0], refused: 0)
            if perturbation.meaningfulAsRawInput { row.correct[.raw] = 0 }
            var start = 0
            while start < test.count {
                let end = min(test.count, start + batchSize), batch = end - start
                for slot in 0..<batch {
                    let index = start + slot
                    test.images.withUnsafeBufferPointer { images in
                        perturbed.withUnsafeMutableBufferPointer { out in scratch.withUnsafeMutableBufferPointer { s in
                            perturbation.apply(images.baseAddress! + index * pixels, width: w, height: h, imageID: Int(test.ids[index]),
                                               into: out.baseAddress!, scratch: s.baseAddress!)
                        } }
                    }
                    let raw = rawInput.pointer + slot * pixels, prepared = preparedInput.pointer + slot * pixels
                    for p in 0..<pixels { raw[p] = table[Int(perturbed[p])] }
                    for p in 0..<pixels { grey.values[p] = Float(perturbed[p]) / 255 }
                    if let result = try? DigitPreprocessor.prepare(grey, path: "test image \(test.ids[index])", height: h, width: w) {
                        for p in 0..<pixels { prepared[p] = table[Int(min(255, max(0, result.pixels[p].rounded())))] }
                        readable[slot] = true
                    } else {
                        prepared.update(repeating: table[0], count: pixels)
                        readable[slot] = false
                        row.refused += 1
                    }
                }
                func countCorrect(_ input: FloatBuffer, onlyReadable: Bool) -> Int {
                    let logits = model.network.forward(input.pointer, batch: batch, context: PassContext(mode: .evaluation))
                    var correct = 0
                    for slot in 0..<batch where !onlyReadable || readable[slot] {
                        let l = logits + slot * classes
                        var best = 0
                        for k in 1..<classes where l[k] > l[best] { best = k }
                        if best == Int(test.labels[start + slot]) { correct += 1 }
                    }
                    return correct
                }
                if perturbation.meaningfulAsRawInput { row.correct[.raw, default: 0] += countCorrect(rawInput, onlyReadable: false) }
                row.correct[.preprocessed, default: 0] += countCorrect(preparedInput, onlyReadable: true)
                start = end
            }
            rows.append(row)
        }
        return RobustnessReport(rows: rows, count: test.count)
    }

    /// Sums the counts of every rank (each scored its shard of the test set).
    mutating func combine(over communicator: Communicator) throws {
        var counts = [Double(count)]
        for row in rows { counts += [Double(row.correct[.raw] ?? 0), Double(row.correct[.preprocessed] ?? 0), Double(row.refused)] }
        try communicator.allreduceSum(&counts)
        count = Int(counts[0])
        for r in rows.indices {
            if rows[r].correct[.raw] != nil { rows[r].correct[.raw] = Int(counts[1 + 3 * r]) }
            rows[r].correct[.preprocessed] = Int(counts[2 + 3 * r])
            rows[r].refused = Int(counts[3 + 3 * r])
        }
    }

    /// The table a person reads (and can paste into the docs).
    func text(model: TrainedModel, seconds: Double) -> String {
        var lines = ["checkpoint \(model.path)  (model \(model.metadata["model"] ?? "?"), epoch \(model.metadata["epoch"] ?? "?")"
                     + (model.weightsUsed == "ema" ? ", the weight average" : "") + ")",
                     "robustness: \(count) test images under each perturbation, \(fixed(seconds, 1)) s", "",
                     "| perturbation | what | 28x28 straight in | through predict's preprocessing |",
                     "| --- | --- | ---: | ---: |"]
        func cell(_ row: Row, _ feed: Feed) -> String {
            guard let a = accuracy(row, feed) else { return "n/a" }
            let refused = feed == .preprocessed && row.refused > 0 ? " (\(row.refused) refused)" : ""
            return fixed(100 * a, 2) + "%" + refused
        }
        for row in rows {
            lines.append("| \(row.perturbation.rawValue) | \(row.perturbation.summary) | \(cell(row, .raw)) | \(cell(row, .preprocessed)) |")
        }
        lines.append("")
        for (feed, name) in [(Feed.raw, "straight in"), (.preprocessed, "through predict's preprocessing")] {
            if let (p, a) = worst(feed) { lines.append("worst \(name): \(p.rawValue), \(fixed(100 * a, 2))%") }
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object: the images, and per perturbation its accuracy through each feed (null
    /// where it does not apply) and the images the preprocessing refused; the worst of each feed.
    func json(model: TrainedModel) -> String {
        func number(_ value: Double?) -> String { value.map { jsonNumber($0) } ?? "null" }
        let items = rows.map { row in
            "{\"name\":\"\(row.perturbation.rawValue)\",\"description\":\"\(jsonEscape(row.perturbation.summary))\","
                + "\"raw_accuracy\":\(number(accuracy(row, .raw))),\"preprocessed_accuracy\":\(number(accuracy(row, .preprocessed))),"
                + "\"preprocessed_refused\":\(row.refused)}"
        }
        func worstField(_ feed: Feed) -> String {
            guard let (p, a) = worst(feed) else { return "null" }
            return "{\"name\":\"\(p.rawValue)\",\"accuracy\":\(jsonNumber(a))}"
        }
        return "{\"checkpoint\":\"\(jsonEscape(model.path))\",\"model\":\"\(jsonEscape(model.metadata["model"] ?? ""))\","
            + "\"images\":\(count),\"perturbations\":[" + items.joined(separator: ",") + "],"
            + "\"worst_raw\":\(worstField(.raw)),\"worst_preprocessed\":\(worstField(.preprocessed))}"
    }

    /// An SVG bar chart: per perturbation a bar for each feed, accuracy 0-100%.
    func svg(model: TrainedModel) -> String {
        let left = 60.0, top = 50.0, plotH = 260.0, groupW = 56.0, barW = 22.0, bottom = 110.0
        let plotW = groupW * Double(rows.count)
        let width = left + plotW + 30, height = top + plotH + bottom
        let colours: [Feed: String] = [.raw: "#1f77b4", .preprocessed: "#ff7f0e"]
        func y(_ accuracy: Double) -> Double { top + plotH * (1 - accuracy) }
        var svg = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="11">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(left)" y="20" font-size="14">digits robustness: \(xmlEscape(model.path)) (\(count) test images each)</text>

        """
        for i in 0...10 {
            let v = Double(i) / 10
            svg += "<line x1=\"\(left)\" y1=\"\(y(v))\" x2=\"\(left + plotW)\" y2=\"\(y(v))\" stroke=\"\(i == 0 ? "#888" : "#eee")\"/>"
            svg += "<text x=\"\(left - 4)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(i * 10)%</text>\n"
        }
        for (n, row) in rows.enumerated() {
            let x0 = left + Double(n) * groupW + (groupW - 2 * barW) / 2
            for (k, feed) in Feed.allCases.enumerated() {
                let x = x0 + Double(k) * barW
                guard let a = accuracy(row, feed) else {
                    svg += "<text x=\"\(x + barW / 2)\" y=\"\(y(0) - 4)\" text-anchor=\"middle\" font-size=\"9\" fill=\"#888\">n/a</text>\n"
                    continue
                }
                svg += "<rect x=\"\(x)\" y=\"\(y(a))\" width=\"\(barW - 2)\" height=\"\(plotH * a)\" fill=\"\(colours[feed] ?? "#888")\">"
                    + "<title>\(row.perturbation.rawValue), \(feed == .raw ? "straight in" : "through preprocessing"): \(fixed(100 * a, 2))%</title></rect>\n"
                svg += "<text x=\"\(x + barW / 2 - 1)\" y=\"\(y(a) - 3)\" text-anchor=\"middle\" font-size=\"8\">\(Int((100 * a).rounded()))</text>\n"
            }
            let cx = left + (Double(n) + 0.5) * groupW, ly = top + plotH + 12
            svg += "<text x=\"\(cx)\" y=\"\(ly)\" text-anchor=\"end\" transform=\"rotate(-40 \(cx) \(ly))\">\(row.perturbation.rawValue)</text>\n"
        }
        let legendY = top + plotH + bottom - 14
        svg += "<rect x=\"\(left)\" y=\"\(legendY - 9)\" width=\"10\" height=\"10\" fill=\"\(colours[.raw] ?? "")\"/>"
            + "<text x=\"\(left + 14)\" y=\"\(legendY)\">28x28 straight in</text>\n"
        svg += "<rect x=\"\(left + 140)\" y=\"\(legendY - 9)\" width=\"10\" height=\"10\" fill=\"\(colours[.preprocessed] ?? "")\"/>"
            + "<text x=\"\(left + 154)\" y=\"\(legendY)\">through predict's preprocessing</text>\n"
        svg += "</svg>\n"
        return svg
    }
}

extension RobustnessReport {
    /// A PNG grid to look at: a row per perturbation, and for each of the first `count` test images
    /// the perturbed image and, beside it, what predict's preprocessing makes of it (dark red when it
    /// refused). Rows are numbered from 1 in the order of `Perturbation.allCases`.
    static func examples(of test: Dataset, count: Int, zoom: Int = 2) -> Image8 {
        let h = test.height, w = test.width, pixels = test.pixelsPerImage, shown = min(count, test.count)
        let labelWidth = 40, gap = 6, tileW = w * zoom, tileH = h * zoom
        var image = Image8(width: labelWidth + shown * (2 * tileW + gap) + gap, height: Perturbation.allCases.count * (tileH + gap) + gap,
                           channels: 3, fill: 40)
        var perturbed = [UInt8](repeating: 0, count: pixels), scratch = [Float](repeating: 0, count: 3 * pixels)
        var tile = [Float](repeating: 0, count: pixels)
        for (row, perturbation) in Perturbation.allCases.enumerated() {
            let y = gap + row * (tileH + gap)
            // The tiny font has digits only: rows are numbered as `Perturbation.allCases` (the message lists them).
            image.drawText(String(row + 1), x: 8, y: y + tileH / 2 - 5, scale: 2, color: (255, 200, 60))
            for index in 0..<shown {
                let x = labelWidth + index * (2 * tileW + gap)
                test.images.withUnsafeBufferPointer { images in
                    perturbed.withUnsafeMutableBufferPointer { out in scratch.withUnsafeMutableBufferPointer { s in
                        perturbation.apply(images.baseAddress! + index * pixels, width: w, height: h, imageID: Int(test.ids[index]),
                                           into: out.baseAddress!, scratch: s.baseAddress!)
                    } }
                }
                for p in 0..<pixels { tile[p] = Float(perturbed[p]) }
                image.place(tile, tileWidth: w, tileHeight: h, x: x, y: y, zoom: zoom)
                let grey = GreyImage(width: w, height: h, values: perturbed.map { Float($0) / 255 })
                if let prepared = try? DigitPreprocessor.prepare(grey, path: "", height: h, width: w) {
                    image.place(prepared.pixels, tileWidth: w, tileHeight: h, x: x + tileW, y: y, zoom: zoom)
                } else {
                    for ty in y..<(y + tileH) { for tx in (x + tileW)..<(x + 2 * tileW) {
                        let base = (ty * image.width + tx) * 3
                        image.pixels[base] = 120; image.pixels[base + 1] = 20; image.pixels[base + 2] = 20
                    } }
                }
            }
        }
        return image
    }
}

extension Evaluate {
    /// --robustness: the report on this rank's part of the test set, summed over the ranks; rank 0
    /// prints it (a table, or JSON) and draws the plot.
    func runRobustness(model: TrainedModel, test part: Dataset, communicator: Communicator) throws {
        if let robustnessExamples, !robustnessExamples.lowercased().hasSuffix(".png") {
            throw CommandError("\(robustnessExamples): the examples are a PNG picture; name the file .png")
        }
        if checkpointOption.checkpoints.count > 1 || checkpointOption.tta || checkpointOption.ttaViews != nil {
            throw CommandError("--robustness scores one model on each perturbed image: give one --checkpoint and no --tta")
        }
        if misclassified != nil || logitsOut != nil {
            throw CommandError("--robustness scores perturbed images; run --misclassified and --logits-out without it")
        }
        if let robustnessPlot, !robustnessPlot.lowercased().hasSuffix(".svg") {
            throw CommandError("\(robustnessPlot): the plot is an SVG drawing; name the file .svg")
        }
        let t0 = monotonicSeconds()
        var report = RobustnessReport.run(model, on: part)
        try report.combine(over: communicator)
        guard communicator.isRoot else { return }
        print(json ? report.json(model: model) : report.text(model: model, seconds: monotonicSeconds() - t0))
        if let robustnessPlot {
            try writeOutputFile(Array(report.svg(model: model).utf8), to: robustnessPlot)
            if !json { print("\nwrote \(robustnessPlot): accuracy per perturbation, straight in and through predict's preprocessing") }
        }
        if let robustnessExamples {
            try RobustnessReport.examples(of: part, count: 8).writePNG(to: robustnessExamples)
            if !json {
                let rows = Perturbation.allCases.enumerated().map { "\($0.offset + 1) \($0.element.rawValue)" }.joined(separator: ", ")
                print("wrote \(robustnessExamples): the first 8 test images under each perturbation, each beside what predict's preprocessing makes of it; rows \(rows)")
            }
        }
    }
}
