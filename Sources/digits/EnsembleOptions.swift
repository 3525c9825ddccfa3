import ArgumentParser
import Training

extension TestTimeViewSet: ExpressibleByArgument {}
extension TrainedModel.Weights: ExpressibleByArgument {}

/// The help of --weights, shared by every command that reads a checkpoint's weights.
let weightsHelp = ArgumentHelp("Which weights of a checkpoint trained with --ema: selected (the ones the run chose on validation), raw (the live weights) or ema (the moving average). Checkpoints without an average have only raw.")

/// The checkpoints `evaluate` and `predict` read (one, or several averaged as an ensemble) and their
/// test-time augmentation.
struct EnsembleOptions: ParsableArguments {
    @Option(name: .customLong("checkpoint"),
            help: ArgumentHelp("A trained checkpoint: a .safetensors file, a checkpoint directory (its newest), or its latest file (default: \(CheckpointOption.defaultPath)). Repeat it to average several checkpoints' probabilities (an ensemble); they must take the same image size and classes.",
                               valueName: "checkpoint"))
    var checkpoints: [String] = []

    @Flag(help: "Test-time augmentation: average the probabilities over the image and copies of it scaled by 0.9 and 1.1 (or --tta-views; with several checkpoints, over every checkpoint and view). Each view costs one more pass of each model.")
    var tta = false

    @Option(help: "The views --tta averages over (given alone, it turns --tta on): scales (the image, and scaled by 0.9 and 1.1; the default), rotations (the image, and rotated by ±8 degrees), shifts (the image and its 1-pixel shifts right, left, down, up), scales-rotations (5 views).")
    var ttaViews: TestTimeViewSet?

    @Option(help: weightsHelp) var weights: TrainedModel.Weights = .selected

    /// The views every member sees: the image alone without --tta.
    var views: [TestTimeView] {
        tta || ttaViews != nil ? (ttaViews ?? TestTimeViewSet.standard).views : [.identity]
    }

    /// The checkpoint files (`resolveCheckpoint`), in the order given; the default when none is named.
    /// A file named twice (say as a directory and as its latest) is refused: it would count double.
    func files() throws -> [String] {
        let named = checkpoints.isEmpty ? [CheckpointOption.defaultPath] : checkpoints
        var files = [String]()
        for path in named {
            let file = try resolveCheckpoint(path)
            // files[i] came from named[i]: the earlier name is said too.
            if let earlier = files.firstIndex(of: file) {
                throw CommandError("\(file): named twice (--checkpoint \(named[earlier]) and --checkpoint \(path)); "
                                   + "an ensemble's members are different checkpoints")
            }
            files.append(file)
        }
        return files
    }

    /// Refuses `option` unless one model sees only the image itself: a heat map explains one model's
    /// answer on one image, not an average over members or views.
    func requireOneModel(for option: String) throws {
        if checkpoints.count > 1 || tta || ttaViews != nil {
            throw ValidationError("\(option) explains one model on the image itself: give one --checkpoint and no --tta")
        }
    }

    /// The members read and checked to agree, with their views.
    func ensemble() throws -> Ensemble { try Ensemble(checkpoints: try files(), views: views, weights: weights) }
}

/// The lines that say what an ensemble is, before its results: each member numbered (with its own
/// accuracy and loss when `members` holds their reports), and the views; none for one model alone.
func ensembleDescription(_ ensemble: Ensemble, members reports: [ClassificationReport]? = nil) -> [String] {
    var lines = [String]()
    if ensemble.members.count > 1 {
        lines.append("ensemble of \(ensemble.members.count) checkpoints (their probabilities averaged):")
        for (n, member) in ensemble.members.enumerated() {
            var line = "  \(n + 1). \(member.path)  (model \(member.metadata["model"] ?? "?"), epoch \(member.metadata["epoch"] ?? "?"), "
                + "step \(member.metadata["global_step"] ?? "?")" + (member.weightsUsed == "ema" ? ", the weight average" : "") + ")"
            if let report = reports?[n] {
                line += ": accuracy \(fixed(100 * report.accuracy, 2))% (\(report.count - report.correct) wrong), loss \(fixed(report.loss, 4))"
            }
            lines.append(line)
        }
    }
    if ensemble.views != [.identity] {
        lines.append("test-time augmentation: \(ensemble.views.count) views (\(ensemble.views.map(\.description).joined(separator: ", ")))"
                     + (ensemble.members.count > 1 && reports != nil ? ", for the ensemble and each member" : ""))
    }
    return lines
}

/// The JSON fields that say what an ensemble is, in place of one model's checkpoint and model:
/// "members" (each with its checkpoint, model, and its own images, accuracy and loss) and "tta_views".
func ensembleJSONFields(_ ensemble: Ensemble, members reports: [ClassificationReport]) -> [String] {
    let members = zip(ensemble.members, reports).map { member, report in
        "{\"checkpoint\":\"\(jsonEscape(member.path))\",\"model\":\"\(jsonEscape(member.metadata["model"] ?? ""))\","
            + "\"images\":\(report.count),\"accuracy\":\(jsonNumber(report.accuracy)),\"loss\":\(jsonNumber(report.loss))}"
    }
    return ["\"members\":[" + members.joined(separator: ",") + "]",
            "\"tta_views\":[" + ensemble.views.map { "\"\(jsonEscape($0.description))\"" }.joined(separator: ",") + "]"]
}

/// predict --json's "members" field for an ensemble of one image: each member's class (its index
/// as "digit", as the record's own) and probability, so a disagreement shows.
func memberAnswersJSON(_ answer: EnsembleProbabilities) -> String {
    let members = answer.members.map { p in
        var best = 0
        for k in 1..<answer.classes where p[k] > p[best] { best = k }
        return "{\"digit\":\(best),\"probability\":\(jsonNumber(Double(p[best])))}"
    }
    return "\"members\":[" + members.joined(separator: ",") + "]"
}
