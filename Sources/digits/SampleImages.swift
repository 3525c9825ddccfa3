import ArgumentParser
import Datasets
import Foundation
import ImageIO

struct SampleImages: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-images",
        abstract: "Write MNIST test digits as PNG or JPEG files, like photos of handwriting: dark ink on light paper, enlarged (to try predict)."
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
            let test = try MNIST.load(.test, from: data.dataDir)
            do { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            catch { throw CommandError("\(out): cannot create: \(error.localizedDescription)") }
            var tile = [Float](repeating: 0, count: 784)
            for i in 0..<count {
                for p in 0..<784 { let v = Float(test.images[i * 784 + p]); tile[p] = mnistPolarity ? v : 255 - v }
                var image = Image8(width: 28 * scale, height: 28 * scale)
                image.place(tile, tileWidth: 28, tileHeight: 28, x: 0, y: 0, zoom: scale)
                let index = String(i), padded = String(repeating: "0", count: max(0, 5 - index.count)) + index
                let path = "\(out)/digit-\(padded)-label-\(test.labels[i]).\(format.fileExtension)"
                try writeOutputFile(format == .png ? try image.pngData() : try image.jpegData(quality: 90), to: path)
            }
            print("wrote \(count) test digits to \(out)/ (\(format == .png ? "PNG" : "JPEG"), \(mnistPolarity ? "light on dark" : "dark on light"), \(28 * scale)x\(28 * scale))")
        }
    }
}
