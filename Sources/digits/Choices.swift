import ArgumentParser
import Foundation
import Datasets
import NeuralNet
import Training

// Options with a fixed set of values are enums: --help lists the values, a wrong one gets the
// parser's sentence naming the choices, and nothing re-parses a String.

enum OptimizerChoice: String, CaseIterable, ExpressibleByArgument {
    case sgd, nesterov, adam, adamw

    func kind(momentum: Float) -> OptimizerKind {
        switch self {
        case .sgd: return .sgd(momentum: momentum, nesterov: false)
        case .nesterov: return .sgd(momentum: momentum, nesterov: true)
        case .adam: return .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        case .adamw: return .adamW(beta1: 0.9, beta2: 0.999, epsilon: 1e-8)
        }
    }
}

enum ScheduleChoice: String, CaseIterable, ExpressibleByArgument {
    case constant, step, cosine, onecycle
}

/// The file format `sample-images` writes (`predict` reads both).
enum SampleImageFormat: String, CaseIterable, ExpressibleByArgument {
    case png, jpeg

    var fileExtension: String { self == .png ? "png" : "jpg" }
}

enum LearningRateScaling: String, CaseIterable, ExpressibleByArgument {
    /// --lr as given.
    case none
    /// --lr times global batch / --lr-base-batch (Goyal et al. 2017).
    case linear
}

enum ProgressDisplay: String, CaseIterable, ExpressibleByArgument {
    case auto, always, never
}

extension DataPlacement: ExpressibleByArgument {}
extension ExchangeSettings.Compression: ExpressibleByArgument {}

/// What `digits export` writes.
enum ExportFormat: String, CaseIterable, ExpressibleByArgument {
    case onnx
}

/// `--validation`: auto (a twelfth of the training set) or a number of images (0: none).
enum ValidationChoice: ExpressibleByArgument, Equatable {
    case automatic
    case images(Int)
    /// Set by `digits crossval`, not on the command line.
    case fold(index: Int, count: Int)

    init?(argument: String) {
        if argument == "auto" { self = .automatic; return }
        guard let n = Int(argument), n >= 0 else { return nil }
        self = .images(n)
    }

    var defaultValueDescription: String { "auto" }

    /// The split this asks for, keyed by the run's seed (nil: hold nothing out).
    func split(seed: UInt64) -> ValidationSplit? {
        switch self {
        case .automatic: return ValidationSplit(size: .automatic, seed: seed)
        case .images(0): return nil
        case .images(let n): return ValidationSplit(size: .records(n), seed: seed)
        case .fold(let index, let count): return ValidationSplit(size: .fold(index: index, count: count), seed: seed)
        }
    }
}

/// `--seeds 1,2,3`: distinct seeds, one training run each.
struct SeedList: ExpressibleByArgument, Equatable, Sequence {
    var values: [UInt64] = []

    init() {}

    init?(argument: String) {
        let parts = argument.split(separator: ",", omittingEmptySubsequences: false).map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ $0 != nil }) else { return nil }
        values = parts.compactMap { $0 }
        guard Set(values).count == values.count else { return nil }
    }

    var defaultValueDescription: String { "none" }
    var isEmpty: Bool { values.isEmpty }
    var count: Int { values.count }
    subscript(index: Int) -> UInt64 { values[index] }
    func makeIterator() -> IndexingIterator<[UInt64]> { values.makeIterator() }
}
