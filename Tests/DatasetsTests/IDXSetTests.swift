import Foundation
import Testing
@testable import Datasets

@Suite struct IDXSetTests {
    /// Four IDX files of a 20x24, 5-class set (labels 0-4), optionally with classes.txt.
    func writeSet(_ dir: ScratchDirectory, classNames: String? = nil, gzipped: Bool = false) {
        let train = (0..<10).map { UInt8($0 % 5) }, test: [UInt8] = [4, 3, 2, 1, 0]
        func file(_ bytes: [UInt8]) -> [UInt8] { gzipped ? gzip(bytes) : bytes }
        let ext = gzipped ? ".gz" : ""
        _ = dir.write("train-images-idx3-ubyte" + ext, file(imageFile(count: 10, height: 20, width: 24)))
        _ = dir.write("train-labels-idx1-ubyte" + ext, file(labelFile(train)))
        _ = dir.write("t10k-images-idx3-ubyte" + ext, file(imageFile(count: 5, height: 20, width: 24)))
        _ = dir.write("t10k-labels-idx1-ubyte" + ext, file(labelFile(test)))
        if let classNames { _ = dir.write("classes.txt", Array(classNames.utf8)) }
    }

    @Test func unknownSetTakesShapeAndClassesFromTheFiles() throws {
        let dir = ScratchDirectory()
        writeSet(dir, gzipped: true)
        let set = try IDXSet.load(from: dir.path, train: .all, test: .all)
        #expect(set.known == nil && set.displayName == "unknown set")
        #expect(set.height == 20 && set.width == 24 && set.classCount == 5)
        #expect(set.classNames == ["0", "1", "2", "3", "4"])
        #expect(set.train?.classCount == 5 && set.test?.classCount == 5)
        let notice = try #require(set.notice)
        #expect(notice.contains("unknown set") && notice.contains(set.files[0].contentSHA256))
        #expect(set.files.allSatisfy { $0.storedSHA256 != nil })
    }

    @Test func classNamesComeFromClassesTxt() throws {
        let dir = ScratchDirectory()
        writeSet(dir, classNames: "circle\r\n square \nbar\ncross\nring\nspare\n")
        let set = try IDXSet.load(from: dir.path, train: .all, test: .skip)
        #expect(set.classNames == ["circle", "square", "bar", "cross", "ring", "spare"])
        #expect(set.train?.classCount == 6 && set.test == nil)
    }

    @Test func classesTxtMustCoverTheLabels() throws {
        let dir = ScratchDirectory()
        writeSet(dir, classNames: "a\nb\nc\n")
        #expect(throws: DatasetError.labelWithoutClassName(path: dir.path + "/classes.txt", lines: 3,
                                                            labelsPath: dir.path + "/train-labels-idx1-ubyte", label: 4)) {
            try IDXSet.load(from: dir.path, train: .all, test: .all)
        }
        let empty = ScratchDirectory()
        writeSet(empty, classNames: "a\n\nc\nd\ne\n")
        #expect(throws: DatasetError.badClassNames(path: empty.path + "/classes.txt", reason: "line 2 is empty; give one class name a line")) {
            try IDXSet.load(from: empty.path, train: .all, test: .all)
        }
    }

    @Test func differentImageSizesAcrossSplitsAreRefused() throws {
        let dir = ScratchDirectory()
        writeSet(dir)
        let path = dir.write("t10k-images-idx3-ubyte", imageFile(count: 5, height: 24, width: 20))
        #expect(throws: DatasetError.unexpectedImageSize(path: path, height: 24, width: 20, expectedHeight: 20, expectedWidth: 24)) {
            try IDXSet.load(from: dir.path, train: .all, test: .all)
        }
    }

    @Test func transposedStorageIsReadRowByRow() throws {
        let dir = ScratchDirectory()
        // One 2x3 image stored column by column: the file's rows are the image's columns.
        let images = dir.write("img", idxBytes(magic: 0x803, dimensions: [1, 3, 2], data: [1, 4, 2, 5, 3, 6]))
        let labels = dir.write("lab", labelFile([0]))
        let set = try Dataset.load(imagesPath: images, labelsPath: labels, classCount: nil, imageSize: nil, transposed: true)
        #expect(set.height == 2 && set.width == 3 && set.images == [1, 2, 3, 4, 5, 6] && set.classCount == 1)
    }

    @Test func recognitionNamesKnownSetsAndFindsDamagedOnes() {
        let mnist = KnownSet.mnist.sha256
        let files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
        let intact = files.map { KnownSet.File(name: $0, path: "d/" + $0, contentSHA256: mnist[$0]!, storedSHA256: nil) }
        if case .known(let set) = KnownSet.recognise(intact) { #expect(set.name == "MNIST") } else { Issue.record("MNIST not recognised") }

        var damaged = intact
        damaged[3] = KnownSet.File(name: files[3], path: "d/" + files[3], contentSHA256: String(repeating: "0", count: 64), storedSHA256: nil)
        guard case .damaged(let set, let problems) = KnownSet.recognise(damaged) else { Issue.record("damage not found"); return }
        #expect(set.name == "MNIST" && problems.count == 1 && problems[0].path == "d/t10k-labels-idx1-ubyte")
        #expect(problems[0].description.contains("damaged download of MNIST"))

        // Fashion-MNIST is known by its .gz files' SHA-256.
        let fashion = files.map { KnownSet.File(name: $0, path: $0 + ".gz", contentSHA256: "x",
                                                storedSHA256: KnownSet.fashionMNIST.sha256[$0]) }
        if case .known(let set) = KnownSet.recognise(fashion) { #expect(set.classNames[9] == "Ankle boot") }
        else { Issue.record("Fashion-MNIST not recognised") }

        let unknown = files.map { KnownSet.File(name: $0, path: $0, contentSHA256: "y", storedSHA256: "z") }
        if case .unknown = KnownSet.recognise(unknown) {} else { Issue.record("an unknown set was recognised") }
    }

    @Test func anEMNISTSplitIsKnownByItsNamesReadTransposedAndCountedFromZero() throws {
        let dir = ScratchDirectory()
        // Letters: labels 1-26 in the files; each 3x2 image stored column by column.
        let stored: [UInt8] = [1, 4, 2, 5, 3, 6]
        _ = dir.write("emnist-letters-train-images-idx3-ubyte.gz", gzip(idxBytes(magic: 0x803, dimensions: [2, 3, 2], data: stored + stored)))
        _ = dir.write("emnist-letters-train-labels-idx1-ubyte.gz", gzip(labelFile([1, 26])))
        _ = dir.write("emnist-letters-test-images-idx3-ubyte.gz", gzip(idxBytes(magic: 0x803, dimensions: [1, 3, 2], data: stored)))
        _ = dir.write("emnist-letters-test-labels-idx1-ubyte.gz", gzip(labelFile([3])))
        let set = try IDXSet.load(from: dir.path, train: .all, test: .all)
        #expect(set.known?.name == "EMNIST letters" && set.classCount == 26 && set.classNames.first == "A")
        #expect(set.height == 2 && set.width == 3 && set.train?.images.prefix(6) == [1, 2, 3, 4, 5, 6])
        #expect(set.train?.labels == [0, 25] && set.test?.labels == [2] && set.notice == nil)
    }

    @Test func realMNISTIsRecognised() throws {
        guard let directory = mnistDirectory() else { return }
        let set = try IDXSet.load(from: directory, train: .skip, test: .all)
        #expect(set.known?.name == "MNIST" && set.classCount == 10 && set.height == 28 && set.notice == nil)
    }
}
