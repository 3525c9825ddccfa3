import ArgumentParser
import Augmentation
import Datasets
import ImageIO

struct AugmentPreview: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "augment-preview",
        abstract: "Write a PNG grid: training digits in the first column, augmented versions beside them.",
        discussion: "Each row is one training image; the columns after the first are the draws of epochs 0, 1, 2, …"
    )

    @OptionGroup var data: DataOptions
    @Option(help: "The PNG file to write.") var out: String = "augment-preview.png"
    @Option(help: "Augmentation, as for train --augment: the warp keys rotation, scale, xyscale, shift, shear, and the probabilities thickness, blur, lowres, contrast, noise (e.g. none,thickness=1 shows strokes thickened and thinned alone).")
    var augment: String = "default"
    @Option(parsing: .unconditional, help: "Elastic distortion alpha,sigma, as for train --elastic.") var elastic: String?
    @Option(parsing: .unconditional, help: "Rows (training images, from the start of the set).") var rows: Int = 8
    @Option(parsing: .unconditional, help: "Augmented versions per row.") var versions: Int = 8
    @Option(parsing: .unconditional, help: "Seed of the draws.") var seed: UInt64 = 1
    @Option(help: "Magnification of each tile (28x28 for MNIST).") var zoom: Int = 3

    func validate() throws {
        guard (1...100).contains(rows), (1...50).contains(versions), (1...8).contains(zoom) else {
            throw ValidationError("--rows 1-100, --versions 1-50 and --zoom 1-8")
        }
    }

    func run() throws {
        try reportingErrors {
            var settings = try AugmentationSettings(parsing: augment)
            if let elastic { settings.elastic = try AugmentationSettings.parseElastic(elastic) }
            let set = try IDXSet.load(from: data.dataDir, train: .all, test: .skip, verify: false)
            guard let train = set.train else { throw CommandError("\(data.dataDir): no training set read") }
            let augmenter = Augmenter(settings: settings, width: train.width, height: train.height, seed: seed)
            let cell = train.width * zoom, cellHeight = train.height * zoom, gap = 2 * zoom, separator = 4 * zoom
            let width = (versions + 1) * cell + versions * gap + separator
            let height = rows * cellHeight + (rows - 1) * gap
            var image = Image8(width: width, height: height, fill: 96)
            var tile = [Float](repeating: 0, count: train.pixelsPerImage)
            var scratch = [Float](repeating: 0, count: 3 * train.pixelsPerImage)
            train.images.withUnsafeBufferPointer { images in
                for row in 0..<min(rows, train.count) {
                    let source = images.baseAddress! + row * train.pixelsPerImage
                    let y = row * (cellHeight + gap)
                    for p in 0..<train.pixelsPerImage { tile[p] = Float(source[p]) }
                    image.place(tile, tileWidth: train.width, tileHeight: train.height, x: 0, y: y, zoom: zoom)
                    for version in 0..<versions {
                        tile.withUnsafeMutableBufferPointer { t in scratch.withUnsafeMutableBufferPointer { s in
                            augmenter.augment(source, epoch: version, sampleID: Int(train.ids[row]), into: t.baseAddress!, scratch: s.baseAddress!)
                        } }
                        let x = cell + separator + version * (cell + gap)
                        image.place(tile, tileWidth: train.width, tileHeight: train.height, x: x, y: y, zoom: zoom)
                    }
                }
            }
            try image.writePNG(to: out)
            print("wrote \(out): \(rows) training digits (first column) and \(versions) augmented versions each; augmentation \(settings)")
        }
    }
}
