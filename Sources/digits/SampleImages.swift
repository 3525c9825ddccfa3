import ArgumentParser
import Datasets
import Foundation
import ImageIO

struct SampleImages: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-images",
        abstract: "Write test images of --data-dir (MNIST's digits by default) as PNG or JPEG files, like photos of handwriting: dark ink on light paper, enlarged (to try predict)."
    )

    @OptionGroup var data: DataOptions
    @Option(parsing: .unconditional, help: "Directory to write digit-NNNNN-label-L.png (or .jpg) files into.") var out: String = "sample-digits"
    @Option(parsing: .unconditional, help: "How many test images, from the first.") var count: Int = 20
    @Option(help: "Magnification.") var scale: Int = 3
    @Flag(help: "Keep MNIST's light ink on black instead of dark ink on white.") var mnistPolarity = false
    @Option(help: "The file format: png, or jpeg (quality 90, as a phone saves a photo).") var format: SampleImageFormat = .png

    func validate() throws {
        guard (1...10000).contains(count), (1...16).contains(scale) else { throw ValidationError("--count 1-10000, --scale 1-16") }
    }

    func run() throws {
        try reportingErrors {
            let set = try IDXSet.load(from: data.dataDir, train: .skip, test: .all)
            guard let test = set.test else { throw CommandError("\(data.dataDir): no test set read") }
            if let notice = set.notice { print(notice) }
            let h = test.height, w = test.width, pixels = test.pixelsPerImage
            let count = min(self.count, test.count)
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            catch { throw CommandError("\(out): cannot create: \(error.localizedDescription)") }
            var tile = [Float](repeating: 0, count: pixels)
            for i in 0..<count {
                for p in 0..<pixels { let v = Float(test.images[i * pixels + p]); tile[p] = mnistPolarity ? v : 255 - v }
                var image = Image8(width: w * scale, height: h * scale)
                image.place(tile, tileWidth: w, tileHeight: h, x: 0, y: 0, zoom: scale)
                let index = String(i), padded = String(repeating: "0", count: max(0, 5 - index.count)) + index
                let path = "\(out)/digit-\(padded)-label-\(test.labels[i]).\(format.fileExtension)"
                try writeOutputFile(format == .png ? try image.pngData() : try image.jpegData(quality: 90), to: path)
            }
            print("wrote \(count) test images to \(out)/ (\(format == .png ? "PNG" : "JPEG"), \(mnistPolarity ? "light on dark" : "dark on light"), \(w * scale)x\(h * scale))")
        }
    }
}
