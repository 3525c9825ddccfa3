import ArgumentParser
import CStopSignals
import Collective
import Foundation
import Training

struct CrossValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crossval",
        abstract: "K-fold cross-validation of a training recipe: K runs, each holding out a different fold of the training set and scored on it; reports the mean and standard deviation.",
        usage: "digits crossval --folds K [digits train options]",
        discussion: """
        Every training option of digits train applies (the recipe); the folds replace --validation: fold k of K is \
        a k-th of a permutation of the training set keyed by --validation-seed (else --seed), so every image is \
        held out exactly once. The test set is not scored: it waits for the run the recipe is chosen for. Fold \
        k's checkpoints go to <checkpoint-dir>/fold-k. Under mpirun the ranks split into as many equal groups as \
        there are folds (at most), and the groups run different folds side by side.
        """
    )

    @Option(help: "Number of folds (2 or more).") var folds: Int = 5
    @OptionGroup var recipe: Train

    func validate() throws {
        if folds < 2 || folds > 100 { throw ValidationError("--folds must be from 2 to 100, not \(folds)") }
        if !recipe.seeds.isEmpty { throw ValidationError("--seeds trains ensemble members; cross-validate one recipe at a time (use --seed)") }
        if recipe.validation != .automatic { throw ValidationError("--validation and --folds both choose what is held out; give only --folds") }
    }

    func run() throws {
        try runAsRank(collectiveTimeout: recipe.collectiveTimeout > 0 ? recipe.collectiveTimeout : nil) { world in
            try startKernels(threads: recipe.kernel.threads)
            stop_signals_install(world.isRoot ? 1 : 0)
            let groups = (1...min(world.size, folds)).last { world.size % $0 == 0 } ?? 1
            let group = try world.split(groups: groups)
            let index = world.rank / (world.size / groups)
            var mine = [String]()
            for fold in 0..<folds where fold % groups == index {
                var run = recipe
                run.validation = .fold(index: fold, count: folds)
                run.validationSeed = recipe.validationSeed ?? recipe.seed
                run.scoresTestSet = false
                run.checkpointDir = recipe.checkpointDir + "/fold-\(fold + 1)"
                run.metricsOut = recipe.metricsOut.map { CrossValidate.foldPath($0, fold: fold + 1) }
                run.report = recipe.report.map { CrossValidate.foldPath($0, fold: fold + 1) }
                if group.isRoot { print("fold \(fold + 1) of \(folds): checkpoints in \(run.checkpointDir)/") }
                try FileManager.default.createDirectory(atPath: run.checkpointDir, withIntermediateDirectories: true)
                let outcome = try run.trainRun(group)
                if group.isRoot {
                    mine.append("\(fold) \(outcome.validation.map { "\($0)" } ?? "nan") \(outcome.averageValidation.map { "\($0)" } ?? "nan")")
                }
            }
            try world.waitForAll()
            let rows = try world.allgather(mine.joined(separator: "\n")).flatMap { $0.split(separator: "\n") }
            guard world.isRoot else { return }
            printSummary(rows.map(String.init))
        }
    }

    /// The per-fold table and mean ± sample standard deviation, of the live weights and (with --ema) the average.
    func printSummary(_ rows: [String]) {
        var byFold = [Int: (Double, Double)]()
        for row in rows {
            let fields = row.split(separator: " ")
            guard fields.count == 3, let fold = Int(fields[0]) else { continue }
            byFold[fold] = (Double(fields[1]) ?? .nan, Double(fields[2]) ?? .nan)
        }
        let ordered = byFold.keys.sorted()
        let hasAverage = recipe.ema != nil
        print("\ncross-validation, \(folds) folds (validation accuracy of each fold's held-out images; the test set was not used)")
        print(pad("fold", 5) + pad("validation", 12) + (hasAverage ? pad("ema", 10) : ""))
        for fold in ordered {
            let (live, average) = byFold[fold]!
            print(pad(String(fold + 1), 5) + pad(fixed(100 * live, 2) + "%", 12) + (hasAverage ? pad(fixed(100 * average, 2) + "%", 10) : ""))
        }
        func summary(_ values: [Double]) -> String {
            let n = Double(values.count)
            guard n > 1 else { return "-" }
            let mean = values.reduce(0, +) / n
            let sd = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / (n - 1)).squareRoot()
            return "\(fixed(100 * mean, 2))% ± \(fixed(100 * sd, 2))"
        }
        print("mean ± standard deviation: " + summary(ordered.map { byFold[$0]!.0 })
              + (hasAverage ? "; ema: " + summary(ordered.map { byFold[$0]!.1 }) : ""))
    }

    /// `metrics.jsonl` for fold 2 is `metrics.fold-2.jsonl`.
    static func foldPath(_ path: String, fold: Int) -> String {
        let ns = path as NSString
        return ns.pathExtension.isEmpty ? path + ".fold-\(fold)" : ns.deletingPathExtension + ".fold-\(fold)." + ns.pathExtension
    }
}
