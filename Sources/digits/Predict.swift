import ArgumentParser
import Foundation
import ImageIO
import NeuralNet
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read your own images (PNG or JPEG) of digits, or of the classes a checkpoint was trained on.",
        discussion: """
        Each image is prepared the way MNIST was made: the polarity is decided from the border (dark ink on
        light paper is inverted), the ink's bounding box is scaled so its longer side is 20 pixels (area
        averaging, aspect kept) and placed in 28x28 with its centre of mass at the centre (for a model trained
        on H×W images, the box is scaled to fit 20·W/28 by 20·H/28 and placed in H×W). Noise on the paper
        (measured on the border), specks away from the digit, faint ink and strokes far thinner or thicker
        than MNIST's are dealt with on the way (docs/robustness.md). Each answer is the
        class's index and its name, from the checkpoint (the digits for MNIST). A file's first
        bytes say whether it is PNG or JPEG, whatever its name. Directories are read in name order (their
        .png, .jpg and .jpeg files); - reads one image from standard input. A file that cannot be read is
        reported and the others go on; the exit status is 1 if any failed. Without --checkpoint, the newest
        checkpoint digits train wrote here (checkpoints/latest). Several --checkpoint options average their
        probabilities (an ensemble); --tta averages over shifted copies of each image too (docs/accuracy.md).
        """
    )

    @OptionGroup var checkpointOption: EnsembleOptions
    @Argument(help: "PNG or JPEG files, directories of them, or - for one image on standard input.") var inputs: [String]
    @Flag(help: "Print one JSON object per image.") var json = false
    @Option(help: "Write the inputs the network saw (28x28 for MNIST), as PNGs, into this directory.") var savePreprocessed: String?
    @Option(help: ArgumentHelp("Write one PNG per image into this directory (named after the input): what the network saw, magnified, beside a heat map of where the evidence for the predicted class lay, with the class and its probability.",
                               discussion: "Grad-CAM at the last convolutional block's output (the model's last image-shaped activation before flatten or gap; HiResCAM, gradient times activation, where Grad-CAM's map is 0 everywhere); a model without convolutions gets input-gradient saliency, |d logit / d pixel|. The picture says which (docs/explain.md).",
                               valueName: "dir"))
    var explain: String?

    func validate() throws {
        if explain != nil { try checkpointOption.requireOneModel(for: "--explain") }
    }

    func run() throws {
        try reportingErrors {
            let ensemble = try checkpointOption.ensemble()
            let model = ensemble.members[0]   // every member takes its image size and classes
            let files = inputFiles()
            if let savePreprocessed {
                try? FileManager.default.createDirectory(atPath: savePreprocessed, withIntermediateDirectories: true)
            }
            let pictures = explain == nil ? nil : ExplanationPictures(model: model)
            if let explain, let pictures {
                try createExplanationDirectory(explain)
                if !json { print("explanations in \(explain)/: \(pictures.methodSentence)") }
            }
            var failures = 0
            if !json && !files.isEmpty {
                if ensemble.members.count == 1 { print("checkpoint \(model.path)") }
                for line in ensembleDescription(ensemble) { print(line) }
                print(pad("file", 30, right: false) + pad("class", classColumn(model)) + pad("prob", 8) + "   top 3")
            }
            for file in files {
                do {
                    try predict(file, model: model, ensemble: ensemble, pictures: pictures)
                } catch {
                    failures += 1
                    printError("digits: error: \(error)")
                    // With --json every input gets its record: a file that could not be read has an error field.
                    if json { print("{\"file\":\"\(jsonEscape(displayName(file)))\",\"error\":\"\(jsonEscape("\(error)"))\"}") }
                }
            }
            if files.isEmpty { throw CommandError("no PNG or JPEG files in \(inputs.joined(separator: ", "))") }
            if failures > 0 {
                printError("digits: \(failures) of \(files.count) image(s) could not be read")
                throw ExitCode.failure
            }
        }
    }

    /// The inputs, each directory replaced by its image files (.png, .jpg, .jpeg) in name order.
    func inputFiles() -> [String] {
        var files = [String]()
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory), isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: input)) ?? []
                let images = names.filter { name in [".png", ".jpg", ".jpeg"].contains { name.lowercased().hasSuffix($0) } }
                files += images.sorted().map { input + "/" + $0 }
            } else {
                files.append(input)
            }
        }
        return files
    }

    /// Reads and prepares one image, runs the ensemble (or the one model) on it and prints its line or
    /// JSON object; with --save-preprocessed also writes what the network saw.
    func predict(_ file: String, model: TrainedModel, ensemble: Ensemble, pictures: ExplanationPictures? = nil) throws {
        let name = displayName(file)
        let bytes = file == "-" ? try ImageFile.standardInputContents() : try ImageFile.contents(of: file)
        let h = model.input.height, w = model.input.width, names = model.classNames
        let prepared = try DigitPreprocessor.prepare(try ImageFile.readGrey(bytes, name: name), path: name, height: h, width: w)
        let t0 = monotonicSeconds()
        // Whole pixel values, as InputNormalizer's table took them before ensembles.
        let pixels = prepared.pixels.map { UInt8(max(0, min(255, $0.rounded()))) }
        let answer = ensemble.probabilities(ofPixels: pixels, batch: 1)
        let p = answer.mean
        let latency = monotonicSeconds() - t0
        let ranked = (0..<names.count).sorted { p[$0] > p[$1] }
        if let savePreprocessed {
            var image = Image8(width: w, height: h)
            prepared.pixels.withUnsafeBufferPointer { image.place($0.baseAddress!, tileWidth: w, tileHeight: h, x: 0, y: 0) }
            let base = file == "-" ? "stdin" : ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            try image.writePNG(to: savePreprocessed + "/" + base + ".png")
        }
        if let explain, let pictures { try pictures.picture(prepared.pixels).writePNG(to: explanationPath(for: file, in: explain)) }
        if json {
            // "digit" is the class's index (MNIST's digit), "class" its name.
            print("{\"file\":\"\(jsonEscape(name))\",\"digit\":\(ranked[0]),\"class\":\"\(jsonEscape(names[ranked[0]]))\","
                  + "\"probability\":\(jsonNumber(Double(p[ranked[0]]))),"
                  + "\"top3\":[" + ranked.prefix(3).map {
                      "{\"digit\":\($0),\"class\":\"\(jsonEscape(names[$0]))\",\"probability\":\(jsonNumber(Double(p[$0])))}"
                  }.joined(separator: ",") + "],"
                  + "\"inverted\":\(prepared.inverted),\"model_seconds\":\(jsonNumber(latency))"
                  + (ensemble.members.count > 1 ? "," + memberAnswersJSON(answer) : "") + "}")
        } else {
            print(pad(name, 30, right: false) + pad(names[ranked[0]], classColumn(model)) + pad(fixed(Double(p[ranked[0]]), 3), 8) + "   "
                  + ranked.prefix(3).map { "\(names[$0]) \(fixed(Double(p[$0]), 3))" }.joined(separator: ", "))
        }
    }

    /// The width of the class column: 6 (MNIST's digits), or the longest name and a space.
    func classColumn(_ model: TrainedModel) -> Int { max(6, (model.classNames.map(\.count).max() ?? 0) + 1) }

    /// How an input is named in output and errors: `-` is standard input.
    func displayName(_ file: String) -> String { file == "-" ? ImageFile.standardInputName : file }
}
