import Datasets
import Foundation
import ImageIO
import NeuralNet
import Training

/// The pictures of `predict --explain` and `evaluate --explain-misclassified`: what the network saw,
/// and where in it the evidence for the predicted class lay (`Network.explain`: Grad-CAM at the last
/// convolutional block's output, or input-gradient saliency for a model without convolutions).
struct ExplanationPictures {
    let model: TrainedModel
    private let normalizer = InputNormalizer()
    private let input: FloatBuffer   // (1, C, H, W) the network's input

    init(model: TrainedModel) {
        self.model = model
        input = FloatBuffer(capacity: model.input.count)
    }

    /// How the heat maps are made, in a sentence (printed once).
    var methodSentence: String {
        let network = model.network
        guard let boundary = network.gradCAMBoundary, let layer = network.specLayer(atBoundary: boundary) else {
            return "input-gradient saliency |d logit / d pixel| of the predicted class (the model has no convolution for Grad-CAM)"
        }
        return "Grad-CAM of the predicted class at the output of layer \(layer.index + 1) '\(layer.token)' "
            + "\(network.shape(atBoundary: boundary)), the last convolutional block; where Grad-CAM's map is 0 everywhere, "
            + "HiResCAM at the same layer (gradient times activation position by position), as the picture says"
    }

    /// How one image's map was made, short enough for the picture's caption (the bitmap font draws capitals).
    func methodCaption(_ explanation: Explanation) -> String {
        let network = model.network
        let flat = explanation.isFlat ? " (ALL 0)" : ""
        switch explanation.method {
        case .inputGradient:
            return "SALIENCY: INPUT GRADIENT (NO CONV)" + flat
        case .gradCAM(let boundary), .positionwiseGradCAM(let boundary):
            let shape = network.shape(atBoundary: boundary)
            var name = "GRAD-CAM"
            if case .positionwiseGradCAM = explanation.method { name = "HIRESCAM (GRAD-CAM 0)" }
            let layer = network.specLayer(atBoundary: boundary).map { "LAYER \($0.index + 1) \($0.token) " } ?? ""
            return "\(name): \(layer)\(shape.channels)X\(shape.height)X\(shape.width)" + flat
        }
    }

    /// The explanation of one image, given as pixels 0...255 (H, W), normalised as in training.
    func explain(_ pixels: [Float]) -> Explanation {
        let count = model.input.count, table = normalizer.table
        for p in 0..<count { input.pointer[p] = table[Int(max(0, min(255, pixels[p % pixels.count].rounded())))] }
        return model.network.explain(input.pointer)
    }

    /// The picture for one image: the input magnified beside its heat map laid over it, with a colour
    /// scale, the predicted class and its probability, and how the map was made.
    func picture(_ pixels: [Float]) -> Image8 {
        let explanation = explain(pixels)
        let h = model.input.height, w = model.input.width
        let zoom = max(1, min(8, 224 / max(h, w))), panelW = w * zoom, panelH = h * zoom, margin = 8
        let probabilities = explanation.logits.withUnsafeBufferPointer {
            SoftmaxCrossEntropy.probabilities($0.baseAddress!, classes: $0.count)
        }
        let title = "\(model.classNames[explanation.classIndex])  \(fixed(100 * Double(probabilities[explanation.classIndex]), 1))%"
        let caption = methodCaption(explanation)
        let width = max(3 * margin + 2 * panelW, 2 * margin + max(Image8.textWidth(title, scale: 3), Image8.textWidth(caption, scale: 2)))
        let scaleY = margin + panelH + 4, titleY = scaleY + 8 + 3 + 10 + 8
        var image = Image8(width: width, height: titleY + 15 + 6 + 10 + margin, channels: 3, fill: 32)
        let heat = HeatMap.upsampled(explanation.heat, height: h, width: w, toHeight: panelH, toWidth: panelW)
        let right = 2 * margin + panelW
        pixels.withUnsafeBufferPointer { tile in
            image.place(tile.baseAddress!, tileWidth: w, tileHeight: h, x: margin, y: margin, zoom: zoom)
            heat.withUnsafeBufferPointer {
                image.placeHeatOverlay(tile.baseAddress!, heat: $0.baseAddress!, tileWidth: w, tileHeight: h, x: right, y: margin, zoom: zoom)
            }
        }
        image.drawText("INPUT \(h)X\(w)", x: margin, y: scaleY, scale: 2, color: (200, 200, 200))
        image.drawHeatScale(x: right, y: scaleY, width: panelW, height: 8)
        image.drawText("0", x: right, y: scaleY + 11, scale: 2, color: (200, 200, 200))
        image.drawText("1", x: right + panelW - Image8.textWidth("1", scale: 2) + 2, y: scaleY + 11, scale: 2, color: (200, 200, 200))
        image.drawText(title, x: margin, y: titleY, scale: 3, color: (255, 220, 80))
        image.drawText(caption, x: margin, y: titleY + 15 + 6, scale: 2, color: (200, 200, 200))
        return image
    }

    /// `evaluate --misclassified` with heat maps: tiles of each missed test image (2x) beside its heat
    /// map for the predicted class, labelled "true>predicted confidence%" beneath; a small H in the
    /// map's corner marks HiResCAM (Grad-CAM's map was 0), a 0 a map that is 0 everywhere.
    func writeMissGrid(_ misses: [MissedImage], test: Dataset, to path: String) throws {
        let zoom = 2, inner = 2, h = test.height, w = test.width
        let tileW = max(2 * w * zoom + inner, 56)
        try writeTiles(of: misses, from: test, columns: 8, tileWidth: tileW, to: path) { image, cell, x, y in
            let explanation = explain(cell)
            let heat = HeatMap.upsampled(explanation.heat, height: h, width: w, toHeight: h * zoom, toWidth: w * zoom)
            cell.withUnsafeBufferPointer { tile in
                image.place(tile.baseAddress!, tileWidth: w, tileHeight: h, x: x, y: y, zoom: zoom)
                heat.withUnsafeBufferPointer {
                    image.placeHeatOverlay(tile.baseAddress!, heat: $0.baseAddress!, tileWidth: w, tileHeight: h,
                                           x: x + w * zoom + inner, y: y, zoom: zoom)
                }
            }
            // Marked in the heat map's corner: H for HiResCAM (Grad-CAM's map was 0), 0 for a map that is 0 everywhere.
            var mark = ""
            if case .positionwiseGradCAM = explanation.method { mark = "H" }
            if explanation.isFlat { mark = "0" }
            image.drawText(mark, x: x + tileW - 8, y: y + 2, scale: 2, color: (255, 255, 255))
        }
    }
}

/// Makes the directory explanations are written into, or says why it cannot.
func createExplanationDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw CommandError("\(path): is a file, not a directory to write explanations into") }
        return
    }
    do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    catch { throw CommandError("\(path): cannot create the directory for explanations: \(error.localizedDescription)") }
}

/// DIR/NAME.png for an input file (NAME without its extension; stdin for standard input).
func explanationPath(for file: String, in directory: String) -> String {
    let base = file == "-" ? "stdin" : ((file as NSString).lastPathComponent as NSString).deletingPathExtension
    return directory + "/" + base + ".png"
}
