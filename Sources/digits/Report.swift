import ArgumentParser
import Foundation

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a training run's metrics (train --metrics-out) as an SVG: loss and accuracy per epoch, and where the time went."
    )

    @Argument(help: "A metrics file written by digits train --metrics-out.") var metrics: String
    @Option(help: "The SVG file to write.") var out: String = "report.svg"

    func run() throws {
        try reportingErrors {
            guard out.lowercased().hasSuffix(".svg") else {
                throw CommandError("\(out): the report is an SVG drawing; name the file .svg (a browser shows it; rsvg-convert turns it into PNG)")
            }
            let lines = try readMetricsLines(metrics)
            try writeReport(lines, source: metrics, to: out)
            print("wrote \(out): \(lines.filter { $0["final"] == nil }.count) epoch(s) from \(metrics)")
        }
    }
}

/// The numeric fields of each JSON line of a metrics file.
func readMetricsLines(_ path: String) throws -> [[String: Double]] {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) }
    catch { throw CommandError("\(path): cannot read: \(error.localizedDescription)") }
    var result = [[String: Double]]()
    for (number, line) in text.split(separator: "\n").enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw CommandError("\(path): line \(number + 1) is not a JSON object")
        }
        var fields = [String: Double]()
        for (k, v) in object { if let n = v as? NSNumber { fields[k] = n.doubleValue } }
        guard fields["epoch"] != nil else { throw CommandError("\(path): line \(number + 1) has no epoch; not a digits metrics file") }
        result.append(fields)
    }
    guard !result.isEmpty else { throw CommandError("\(path): no metrics lines") }
    return result
}

/// The report's geometry: three panels side by side, in SVG user units.
private let panelW = 360.0, panelH = 240.0, margin = 50.0

/// Three panels: loss (train, validation), accuracy (train, validation, and the weight average's
/// validation when there is one), and seconds per epoch split into compute, allreduce, data and
/// evaluation. The test set's one score (the final line) is in the title.
func writeReport(_ allLines: [[String: Double]], source: String, to path: String) throws {
    let lines = allLines.filter { $0["final"] == nil }
    let test = allLines.last { $0["final"] != nil }.flatMap { $0["test_accuracy"] }
        .map { ", test accuracy \(String(format: "%.2f", 100 * $0))% (scored once, at the end)" } ?? ""
    var svg = """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(3 * (panelW + margin) + margin))" height="\(Int(panelH + 2 * margin + 30))" font-family="sans-serif" font-size="11">
    <rect width="100%" height="100%" fill="white"/>
    <text x="\(margin)" y="20" font-size="14">digits training report: \(xmlEscape(source)) (\(lines.count) epochs\(test))</text>

    """
    let epochs = lines.map { $0["epoch"] ?? 0 }
    svg += seriesPanel(0, title: "loss", epochs: epochs,
                       series: [("train", "#1f77b4", lines.map { $0["train_loss"] }), ("validation", "#d62728", lines.map { $0["validation_loss"] })],
                       percent: false)
    svg += seriesPanel(1, title: "accuracy", epochs: epochs,
                       series: [("train", "#1f77b4", lines.map { $0["train_accuracy"] }), ("validation", "#d62728", lines.map { $0["validation_accuracy"] }),
                                ("ema validation", "#2ca02c", lines.map { $0["ema_validation_accuracy"] })],
                       percent: true)
    svg += timePanel(lines)
    svg += "</svg>\n"
    try writeOutputFile(Array(svg.utf8), to: path)
}

/// Panel `index`: one line per (name, colour, value per epoch) series, a missing value skipped;
/// `percent` labels the axis in percent. Empty when no series has a value.
func seriesPanel(_ index: Int, title: String, epochs: [Double], series: [(String, String, [Double?])], percent: Bool) -> String {
    let x0 = margin + Double(index) * (panelW + margin), y0 = margin
    let values = series.flatMap { $0.2.compactMap { $0 } }
    guard let lo0 = values.min(), let hi0 = values.max() else { return "" }
    let lo = percent ? max(0, lo0 - 0.002) : 0, hi = hi0 == lo ? lo + 1 : hi0 + (hi0 - lo) * 0.05
    let e0 = epochs.min() ?? 1, e1 = max(epochs.max() ?? 1, e0 + 1)
    func px(_ e: Double) -> Double { x0 + (e - e0) / (e1 - e0) * panelW }
    func py(_ v: Double) -> Double { y0 + panelH - (v - lo) / (hi - lo) * panelH }
    var svg = "<text x=\"\(x0)\" y=\"\(y0 - 8)\" font-size=\"12\">\(title)</text>\n"
    svg += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(panelW)\" height=\"\(panelH)\" fill=\"none\" stroke=\"#888\"/>\n"
    for i in 0...4 {
        let v = lo + (hi - lo) * Double(i) / 4
        svg += "<line x1=\"\(x0)\" y1=\"\(py(v))\" x2=\"\(x0 + panelW)\" y2=\"\(py(v))\" stroke=\"#eee\"/>"
        svg += "<text x=\"\(x0 - 4)\" y=\"\(py(v) + 4)\" text-anchor=\"end\">\(percent ? String(format: "%.2f%%", 100 * v) : String(format: "%.3f", v))</text>\n"
    }
    for e in epochs { svg += "<text x=\"\(px(e))\" y=\"\(y0 + panelH + 14)\" text-anchor=\"middle\">\(Int(e))</text>" }
    svg += "<text x=\"\(x0 + panelW / 2)\" y=\"\(y0 + panelH + 30)\" text-anchor=\"middle\">epoch</text>\n"
    for (n, (name, color, data)) in series.enumerated() {
        let points = zip(epochs, data).compactMap { e, v in v.map { "\(px(e)),\(py($0))" } }
        svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\"/>\n"
        for p in points { let xy = p.split(separator: ","); svg += "<circle cx=\"\(xy[0])\" cy=\"\(xy[1])\" r=\"3\" fill=\"\(color)\"/>" }
        svg += "<text x=\"\(x0 + panelW - 90)\" y=\"\(y0 + 16 + Double(n) * 14)\" fill=\"\(color)\">\(name)</text>\n"
    }
    return svg
}

/// The third panel: rank 0's seconds per epoch as stacked bars of compute, allreduce, data and evaluation.
func timePanel(_ lines: [[String: Double]]) -> String {
    let x0 = margin + 2 * (panelW + margin), y0 = margin
    let parts = [("compute", "compute_seconds", "#2ca02c"), ("allreduce", "allreduce_seconds", "#ff7f0e"),
                 ("data", "data_seconds", "#9467bd"), ("evaluation", "evaluation_seconds", "#8c564b")]
    let totals = lines.map { line in parts.reduce(0.0) { $0 + (line[$1.1] ?? 0) } }
    let top = max(totals.max() ?? 1, 1e-9) * 1.1
    var svg = "<text x=\"\(x0)\" y=\"\(y0 - 8)\" font-size=\"12\">seconds per epoch (rank 0)</text>\n"
    svg += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(panelW)\" height=\"\(panelH)\" fill=\"none\" stroke=\"#888\"/>\n"
    let barW = panelW / Double(lines.count) * 0.7
    for (i, line) in lines.enumerated() {
        var y = y0 + panelH
        let x = x0 + (Double(i) + 0.15) * panelW / Double(lines.count)
        for (_, key, color) in parts {
            let h = (line[key] ?? 0) / top * panelH
            y -= h
            svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(barW)\" height=\"\(h)\" fill=\"\(color)\"/>"
        }
        svg += "<text x=\"\(x + barW / 2)\" y=\"\(y0 + panelH + 14)\" text-anchor=\"middle\">\(Int(line["epoch"] ?? 0))</text>\n"
    }
    for i in 0...4 {
        let v = top * Double(i) / 4, y = y0 + panelH - v / top * panelH
        svg += "<text x=\"\(x0 - 4)\" y=\"\(y + 4)\" text-anchor=\"end\">\(String(format: "%.1f", v))</text>"
    }
    for (n, (name, _, color)) in parts.enumerated() {
        svg += "<text x=\"\(x0 + panelW - 80)\" y=\"\(y0 + 16 + Double(n) * 14)\" fill=\"\(color)\">\(name)</text>\n"
    }
    return svg
}

func xmlEscape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
