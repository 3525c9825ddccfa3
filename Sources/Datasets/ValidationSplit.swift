import CounterRNG

/// The training file divided in two: records held out for validation, chosen by a seeded
/// permutation of the whole file (the same on every rank, for every world size and placement),
/// and the rest, which are trained on. Every epoch, every recipe and any choice of checkpoint is
/// scored on the held-out part, so the test set is scored once, at the end, and chooses nothing.
public struct ValidationSplit: Sendable, Equatable, CustomStringConvertible {
    public enum Size: Sendable, Equatable {
        /// A twelfth of the training file: MNIST's 60,000 give 5,000.
        case automatic
        case records(Int)
        /// Fold `index` of `count` equal folds of the file (cross-validation): each record is held
        /// out by exactly one fold.
        case fold(index: Int, count: Int)
    }

    public let size: Size
    public let seed: UInt64

    public init(size: Size, seed: UInt64) {
        self.size = size
        self.seed = seed
    }

    /// Positions in the seeded permutation of a file of `total` records that are held out.
    func heldOutPositions(total: Int) -> Range<Int> {
        switch size {
        case .automatic: return 0..<(total / 12)
        case .records(let n): return 0..<max(0, n)
        case .fold(let index, let count): return (index * total / count)..<((index + 1) * total / count)
        }
    }

    /// Records held out of a file of `total`.
    public func heldOutCount(total: Int) -> Int { heldOutPositions(total: total).count }

    public var description: String {
        switch size {
        case .automatic: return "a twelfth of the training set, seed \(seed)"
        case .records(let n): return "\(n) records, seed \(seed)"
        case .fold(let index, let count): return "fold \(index + 1) of \(count), seed \(seed)"
        }
    }

    /// The global ids of the records trained on and of those held out, each ascending.
    public func split(total: Int, path: String) throws -> (train: [Int32], validation: [Int32]) {
        let positions = heldOutPositions(total: total)
        let held = positions.count
        guard held < total, positions.upperBound <= total else {
            throw DatasetError.unreadable(path: path, reason: "holds \(total) training records; a validation split of \(held) "
                                          + "would leave none to train on (use a smaller --validation, or 0 for none)")
        }
        let permutation = keyedPermutation(count: total, seed: seed, purpose: .validationSplit)
        var isHeld = [Bool](repeating: false, count: total)
        for position in positions { isHeld[Int(permutation[position])] = true }
        var train = [Int32](), validation = [Int32]()
        train.reserveCapacity(total - held)
        validation.reserveCapacity(held)
        for id in 0..<total { if isHeld[id] { validation.append(Int32(id)) } else { train.append(Int32(id)) } }
        return (train, validation)
    }
}

extension ShardSpec {
    /// This rank's share of `ids` (a subset of a file's records), ascending: the same dealing as
    /// `indices(sampleCount:)` over positions in `ids`.
    public func share(of ids: [Int32]) throws -> [Int32] {
        try indices(sampleCount: ids.count).map { ids[Int($0)] }.sorted()
    }
}
