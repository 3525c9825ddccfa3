import Testing
@testable import Datasets

@Suite struct IDXReadingTests {
    @Test(arguments: [false, true])
    func readsImagesAndLabels(compressed: Bool) throws {
        let dir = ScratchDirectory()
        let labels: [UInt8] = [3, 1, 4, 1, 5, 9, 2, 6]
        let images = imageFile(count: 8)
        let imagesPath = dir.write("img", compressed ? gzip(images) : images)
        let labelsPath = dir.write("lab", compressed ? gzip(labelFile(labels)) : labelFile(labels))
        let set = try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath)
        #expect(set.count == 8)
        #expect(set.labels == labels)
        #expect(set.height == 28 && set.width == 28)
        #expect(Array(set.images) == Array(images[16...]))
        #expect(set.ids == (0..<8).map { Int32($0) })
        #expect(set.imagesSHA256 == SHA256.hex(images))
        #expect(set.labelsSHA256 == SHA256.hex(labelFile(labels)))
        #expect(set.classCounts() == [0, 2, 1, 1, 1, 1, 1, 0, 0, 1])
    }

    @Test func acceptsOtherImageSizesWhenAsked() throws {
        let dir = ScratchDirectory()
        let imagesPath = dir.write("img", imageFile(count: 2, height: 5, width: 3))
        let labelsPath = dir.write("lab", labelFile([0, 1]))
        let set = try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath, imageSize: nil)
        #expect(set.height == 5 && set.width == 3 && set.images.count == 30)
        #expect(throws: DatasetError.unexpectedImageSize(path: imagesPath, height: 5, width: 3, expectedHeight: 28, expectedWidth: 28)) {
            try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath)
        }
    }

    @Test func detectsGzipByContentNotName() throws {
        let dir = ScratchDirectory()
        let imagesPath = dir.write("images.raw", gzip(imageFile(count: 3)))
        let labelsPath = dir.write("labels.gz", labelFile([0, 1, 2]))
        let set = try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath)
        #expect(set.count == 3)
    }

    @Test func readsConcatenatedGzipMembers() throws {
        let dir = ScratchDirectory()
        let bytes = imageFile(count: 4)
        let imagesPath = dir.write("img.gz", gzip(Array(bytes[0..<1000])) + gzip(Array(bytes[1000...])))
        let labelsPath = dir.write("lab", labelFile([0, 1, 2, 3]))
        let set = try Dataset.load(imagesPath: imagesPath, labelsPath: labelsPath)
        #expect(Array(set.images) == Array(bytes[16...]))
    }

    @Test func pixelStatistics() {
        let set = Dataset(images: [0, 0, 255, 255], labels: [0], height: 2, width: 2)
        let stats = set.pixelStatistics()
        #expect(stats.mean == 127.5)
        #expect(stats.standardDeviation == 127.5)
    }
}

/// Every malformed input gives its own typed error naming the file, never a crash.
@Suite struct IDXBadInputTests {
    let dir = ScratchDirectory()
    var goodLabels: String { dir.write("good-labels", labelFile([1, 2, 3])) }
    var goodImages: String { dir.write("good-images", imageFile(count: 3)) }

    func loadError(images: String? = nil, labels: String? = nil) -> DatasetError? {
        do {
            _ = try Dataset.load(imagesPath: images ?? goodImages, labelsPath: labels ?? goodLabels)
            return nil
        } catch let error as DatasetError {
            return error
        } catch {
            return nil
        }
    }

    @Test func missingFile() {
        let path = dir.path + "/nope"
        #expect(loadError(images: path) == .fileNotFound(path: path))
        #expect(loadError(images: path)?.description.contains(path) == true)
    }

    @Test func emptyFile() {
        let path = dir.write("empty", [])
        #expect(loadError(labels: path) == .emptyFile(path: path))
        let gzipOfNothing = dir.write("empty.gz", gzip([]))
        #expect(loadError(labels: gzipOfNothing) == .emptyFile(path: gzipOfNothing))
    }

    @Test func wrongMagic() {
        let path = dir.write("swapped", labelFile([1, 2, 3]))
        // A labels file where images are expected.
        #expect(loadError(images: path) == .wrongMagic(path: path, expected: 0x803, found: 0x801))
        let text = dir.write("text", Array("hello, world".utf8))
        #expect(loadError(labels: text) == .wrongMagic(path: text, expected: 0x801, found: 0x6865_6c6c))
        #expect(loadError(labels: text)?.description.contains("0x00000801") == true)
    }

    @Test func truncatedHeader() {
        let short = dir.write("short", Array(imageFile(count: 3)[0..<10]))
        #expect(loadError(images: short) == .truncatedHeader(path: short, expectedBytes: 16, foundBytes: 10))
        let tiny = dir.write("tiny", [0, 0])
        #expect(loadError(images: tiny) == .truncatedHeader(path: tiny, expectedBytes: 16, foundBytes: 2))
    }

    @Test(arguments: [false, true])
    func truncatedData(compressed: Bool) {
        let bytes = Array(imageFile(count: 3).dropLast(100))
        let path = dir.write("cut", compressed ? gzip(bytes) : bytes)
        #expect(loadError(images: path) == .truncatedData(path: path, expectedBytes: 3 * 784, foundBytes: 3 * 784 - 100))
    }

    /// A 22-byte file whose header promises one 2 GiB image (found by the idx fuzz target: the whole
    /// record was allocated before a byte of it was read): truncated, with memory for what is there.
    @Test func aHugeRecordPromisedByATinyFileIsTruncated() throws {
        let header: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0, 0, 0]
        let path = dir.write("huge-record", header + [8, 0, 4, 0, 1, 2])
        #expect(throws: DatasetError.truncatedData(path: path, expectedBytes: 1 << 31, foundBytes: 6)) {
            _ = try readIDX(path: path, kind: .images, onHeader: { _ in }, onRecords: { _, _ in })
        }
    }

    @Test(arguments: [false, true])
    func trailingBytes(compressed: Bool) {
        let bytes = labelFile([1, 2, 3]) + [7, 7, 7, 7, 7]
        let path = dir.write("long", compressed ? gzip(bytes) : bytes)
        #expect(loadError(labels: path) == .trailingBytes(path: path, extraBytes: 5))
    }

    @Test func corruptGzipStream() {
        var bytes = gzip(imageFile(count: 3))
        bytes[bytes.count / 2] ^= 0xff
        bytes[bytes.count / 2 + 1] ^= 0x55
        let flipped = dir.write("flipped.gz", bytes)
        if case .corruptGzip(let path, _)? = loadError(images: flipped) { #expect(path == flipped) } else {
            Issue.record("expected corruptGzip, got \(String(describing: loadError(images: flipped)))")
        }
        // A gzip file cut short: the compressed stream ends before its trailer.
        let good = gzip(imageFile(count: 3))
        let cut = dir.write("cut.gz", Array(good[0..<(good.count - 20)]))
        if case .corruptGzip(let path, let reason)? = loadError(images: cut) {
            #expect(path == cut)
            #expect(reason.contains("truncated"))
        } else {
            Issue.record("expected corruptGzip for a cut stream")
        }
        // Garbage after a complete gzip member.
        let tail = dir.write("tail.gz", gzip(labelFile([1, 2, 3])) + [1, 2, 3, 4])
        if case .corruptGzip? = loadError(labels: tail) {} else { Issue.record("expected corruptGzip for a garbage tail") }
    }

    @Test func labelOutOfRange() {
        let path = dir.write("labels", labelFile([1, 10, 3]))
        #expect(loadError(labels: path) == .labelOutOfRange(path: path, index: 1, label: 10, classCount: 10))
    }

    @Test func countMismatch() {
        let labels = dir.write("labels4", labelFile([1, 2, 3, 4]))
        let images = goodImages
        #expect(loadError(images: images, labels: labels)
                == .countMismatch(imagesPath: images, images: 3, labelsPath: labels, labels: 4))
    }

    @Test func zeroDimension() {
        let path = dir.write("zero", idxBytes(magic: 0x803, dimensions: [3, 0, 28], data: []))
        #expect(loadError(images: path) == .zeroDimension(path: path, dimensions: [3, 0, 28]))
        let noLabels = dir.write("nolabels", idxBytes(magic: 0x801, dimensions: [0], data: []))
        #expect(loadError(labels: noLabels) == .zeroDimension(path: noLabels, dimensions: [0]))
    }

    @Test func dimensionsPromisingTooMuchAreRefusedBeforeAllocating() {
        // 4e9 x 28 x 28 bytes: the header alone; reading must stop at the header.
        let path = dir.write("huge", idxBytes(magic: 0x803, dimensions: [4_000_000_000, 28, 28], data: []))
        if case .tooLarge(let p, let dims, _, let limit)? = loadError(images: path) {
            #expect(p == path && dims == [4_000_000_000, 28, 28] && limit == 1 << 31)
        } else {
            Issue.record("expected tooLarge")
        }
        let huge = dir.write("huge2", idxBytes(magic: 0x803, dimensions: [0xffff_ffff, 0xffff_ffff, 0xffff_ffff], data: []))
        if case .tooLarge? = loadError(images: huge) {} else { Issue.record("expected tooLarge on overflow") }
    }

    @Test func directoryIsUnreadable() {
        if case .unreadable(let p, _)? = loadError(images: dir.path) { #expect(p == dir.path) } else {
            Issue.record("expected unreadable for a directory")
        }
    }
}
