import CounterRNG

/// Which records of a data set one rank keeps (DESIGN.md decision 5): a seeded permutation of
/// all record indices, dealt out strided (rank r takes positions r, r+W, r+2W, …). Across the
/// ranks of a world every index appears exactly once; shard sizes differ by at most one.
public struct ShardSpec: Sendable, Equatable {
    public let rank: Int
    public let worldSize: Int
    public let seed: UInt64

    public init(rank: Int, worldSize: Int, seed: UInt64) {
        self.rank = rank
        self.worldSize = worldSize
        self.seed = seed
    }

    /// The global record indices this rank keeps, ascending (so reading stays sequential).
    public func indices(sampleCount: Int) throws -> [Int32] {
        guard worldSize >= 1, rank >= 0, rank < worldSize, sampleCount >= worldSize else {
            throw DatasetError.invalidShard(rank: rank, worldSize: worldSize, sampleCount: sampleCount)
        }
        let permutation = keyedPermutation(count: sampleCount, seed: seed, purpose: .shardPermutation)
        var mine = [Int32]()
        mine.reserveCapacity(sampleCount / worldSize + 1)
        for position in stride(from: rank, to: sampleCount, by: worldSize) { mine.append(permutation[position]) }
        mine.sort()
        return mine
    }
}

/// Images with their labels, validated, held as bytes: (count, height, width) row-major.
public struct Dataset: Sendable {
    /// (count, height, width), one byte per pixel, 0 = background.
    public let images: [UInt8]
    /// (count), each in 0..<classCount.
    public let labels: [UInt8]
    /// (count): each record's index in the whole file, the key for per-sample randomness.
    public let ids: [Int32]
    public let height: Int
    public let width: Int
    public let classCount: Int
    /// Records in the whole file, of which this (possibly sharded) set holds `count`.
    public let totalCount: Int
    public let imagesPath: String
    public let labelsPath: String
    /// SHA-256 of each file's uncompressed content (the whole file, whatever the shard).
    public let imagesSHA256: String
    public let labelsSHA256: String
    /// SHA-256 of each file as stored when it is gzip (some sets publish only these), else nil.
    public let imagesStoredSHA256: String?
    public let labelsStoredSHA256: String?

    public var count: Int { labels.count }
    public var pixelsPerImage: Int { height * width }

    /// A data set from memory (tests, previews). No files involved.
    public init(images: [UInt8], labels: [UInt8], height: Int, width: Int, classCount: Int = 10) {
        precondition(images.count == labels.count * height * width)
        self.images = images
        self.labels = labels
        self.ids = (0..<labels.count).map { Int32($0) }
        self.height = height
        self.width = width
        self.classCount = classCount
        self.totalCount = labels.count
        self.imagesPath = "<memory>"
        self.labelsPath = "<memory>"
        self.imagesSHA256 = ""
        self.labelsSHA256 = ""
        self.imagesStoredSHA256 = nil
        self.labelsStoredSHA256 = nil
    }

    private init(images: [UInt8], labels: [UInt8], ids: [Int32], height: Int, width: Int, classCount: Int,
                 totalCount: Int, imagesPath: String, labelsPath: String, imagesSHA256: String, labelsSHA256: String,
                 imagesStoredSHA256: String?, labelsStoredSHA256: String?) {
        self.images = images; self.labels = labels; self.ids = ids
        self.height = height; self.width = width; self.classCount = classCount; self.totalCount = totalCount
        self.imagesPath = imagesPath; self.labelsPath = labelsPath
        self.imagesSHA256 = imagesSHA256; self.labelsSHA256 = labelsSHA256
        self.imagesStoredSHA256 = imagesStoredSHA256; self.labelsStoredSHA256 = labelsStoredSHA256
    }

    /// The same records with `classCount` classes, each label less `labelOffset` (every label must
    /// be at least the offset and below classCount + offset; the caller has checked).
    func with(classCount: Int, labelOffset: Int = 0) -> Dataset {
        precondition(labels.allSatisfy { Int($0) >= labelOffset && Int($0) - labelOffset < classCount })
        let labels = labelOffset == 0 ? self.labels : self.labels.map { $0 - UInt8(labelOffset) }
        return Dataset(images: images, labels: labels, ids: ids, height: height, width: width, classCount: classCount,
                       totalCount: totalCount, imagesPath: imagesPath, labelsPath: labelsPath,
                       imagesSHA256: imagesSHA256, labelsSHA256: labelsSHA256,
                       imagesStoredSHA256: imagesStoredSHA256, labelsStoredSHA256: labelsStoredSHA256)
    }

    /// Reads and validates an images file and a labels file (each raw or gzip).
    ///
    /// - Parameters:
    ///   - classCount: labels must lie in 0..<classCount; nil takes the largest label + 1.
    ///   - imageSize: the required (height, width), or nil to accept any.
    ///   - shard: keep only this rank's records; nil keeps all. Memory is proportional to the shard.
    ///   - transposed: the file stores each image column by column (EMNIST); the set holds them
    ///     row by row, (height, width) being the file's dimensions swapped.
    ///   - select: given the file's record count, the ascending ids to keep (instead of `shard`).
    public static func load(imagesPath: String, labelsPath: String, classCount: Int? = 10,
                            imageSize: (height: Int, width: Int)? = (28, 28),
                            shard: ShardSpec? = nil, transposed: Bool = false,
                            select: ((Int) throws -> [Int32])? = nil) throws -> Dataset {
        // Labels first: small, and their count lets the images header be checked before its data.
        var allLabels = [UInt8]()
        let labelInfo = try readIDX(path: labelsPath, kind: .labels, onHeader: { dims in
            allLabels.reserveCapacity(dims[0])
        }, onRecords: { _, records in
            allLabels.append(contentsOf: records)
        })
        if let classCount {
            for (index, label) in allLabels.enumerated() where Int(label) >= classCount {
                throw DatasetError.labelOutOfRange(path: labelsPath, index: index, label: Int(label), classCount: classCount)
            }
        }
        let classes = classCount ?? (Int(allLabels.max() ?? 0) + 1)
        let total = allLabels.count
        let kept: [Int32] = try select?(total) ?? shard?.indices(sampleCount: total) ?? (0..<total).map { Int32($0) }
        // slot[i] is where global record i goes in this shard, or -1.
        var slot = [Int32](repeating: -1, count: total)
        for (position, index) in kept.enumerated() { slot[Int(index)] = Int32(position) }

        var images = [UInt8]()
        var height = 0, width = 0
        let imageInfo = try readIDX(path: imagesPath, kind: .images, onHeader: { dims in
            if dims[0] != total {
                throw DatasetError.countMismatch(imagesPath: imagesPath, images: dims[0], labelsPath: labelsPath, labels: total)
            }
            height = transposed ? dims[2] : dims[1]; width = transposed ? dims[1] : dims[2]
            if let size = imageSize, size.height != height || size.width != width {
                throw DatasetError.unexpectedImageSize(path: imagesPath, height: height, width: width,
                                                       expectedHeight: size.height, expectedWidth: size.width)
            }
            images = [UInt8](repeating: 0, count: kept.count * height * width)
        }, onRecords: { first, records in
            let recordBytes = height * width
            images.withUnsafeMutableBytes { out in
                for r in 0..<(records.count / recordBytes) {
                    let target = Int(slot[first + r])
                    if target < 0 { continue }
                    if transposed {
                        // The file's row y, column x is our pixel (x, y): its rows are our columns.
                        let from = (records.baseAddress! + r * recordBytes).assumingMemoryBound(to: UInt8.self)
                        let to = (out.baseAddress! + target * recordBytes).assumingMemoryBound(to: UInt8.self)
                        for y in 0..<height {
                            for x in 0..<width { to[y * width + x] = from[x * height + y] }
                        }
                    } else {
                        (out.baseAddress! + target * recordBytes)
                            .copyMemory(from: records.baseAddress! + r * recordBytes, byteCount: recordBytes)
                    }
                }
            }
        })
        let labels = kept.map { allLabels[Int($0)] }
        return Dataset(images: images, labels: labels, ids: kept, height: height, width: width,
                       classCount: classes, totalCount: total, imagesPath: imagesPath, labelsPath: labelsPath,
                       imagesSHA256: imageInfo.sha256, labelsSHA256: labelInfo.sha256,
                       imagesStoredSHA256: imageInfo.storedSHA256, labelsStoredSHA256: labelInfo.storedSHA256)
    }

    /// The records whose global id passes `include` (in the same order, with the same ids); the
    /// whole they are part of counts `totalCount` records (unchanged when nil).
    public func keeping(totalCount newTotal: Int? = nil, _ include: (Int) -> Bool) -> Dataset {
        var images = [UInt8](), labels = [UInt8](), ids = [Int32]()
        for (slot, id) in self.ids.enumerated() where include(Int(id)) {
            images += self.images[(slot * pixelsPerImage)..<((slot + 1) * pixelsPerImage)]
            labels.append(self.labels[slot])
            ids.append(id)
        }
        return Dataset(images: images, labels: labels, ids: ids, height: height, width: width, classCount: classCount,
                       totalCount: newTotal ?? totalCount, imagesPath: imagesPath, labelsPath: labelsPath,
                       imagesSHA256: imagesSHA256, labelsSHA256: labelsSHA256,
                       imagesStoredSHA256: imagesStoredSHA256, labelsStoredSHA256: labelsStoredSHA256)
    }

    /// How many records carry each label.
    public func classCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: classCount)
        for label in labels { counts[Int(label)] += 1 }
        return counts
    }

    /// Mean and population standard deviation of all pixel values (0…255).
    public func pixelStatistics() -> (mean: Double, standardDeviation: Double) {
        var histogram = [Int](repeating: 0, count: 256)
        images.withUnsafeBufferPointer { pixels in
            for p in pixels { histogram[Int(p)] += 1 }
        }
        let n = Double(images.count)
        guard n > 0 else { return (0, 0) }
        var sum = 0.0, sumSquares = 0.0
        for (value, count) in histogram.enumerated() {
            sum += Double(value) * Double(count)
            sumSquares += Double(value * value) * Double(count)
        }
        let mean = sum / n
        return (mean, max(0, sumSquares / n - mean * mean).squareRoot())
    }
}
