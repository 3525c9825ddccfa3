import ArgumentParser
import NeuralNet
import Collective
import Training
import Datasets

@main
struct Digits: ParsableCommand {
    static func main() {
        main(expandingBareResume(Array(CommandLine.arguments.dropFirst())))
    }

    /// `train`'s arguments with a bare `--resume` (the last argument, or followed by another option)
    /// given the value `latest`; any other command's arguments unchanged. swift-argument-parser has no
    /// option whose value may be left out, and `--resume` alone reads as "continue where it stopped".
    /// Nothing after a `--` terminator is an option, so nothing there is touched.
    static func expandingBareResume(_ arguments: [String]) -> [String] {
        guard arguments.first == "train" else { return arguments }
        let terminator = arguments.firstIndex(of: "--") ?? arguments.count
        var expanded = [String]()
        for (index, argument) in arguments.enumerated() {
            expanded.append(argument)
            guard index < terminator, argument == "--resume" else { continue }
            if index + 1 == arguments.count || arguments[index + 1].hasPrefix("-") { expanded.append("latest") }
        }
        return expanded
    }

    static let configuration = CommandConfiguration(
        commandName: "digits",
        abstract: "Train a convolutional network on handwritten digits (MNIST), alone or data-parallel under mpirun.",
        version: digitsVersion,
        subcommands: [Train.self, CrossValidate.self, Evaluate.self, Predict.self, Export.self, Report.self, Bench.self, Inspect.self, InspectData.self, AugmentPreview.self, SampleImages.self]
    )
}

/// The kernel thread count, shared by every command that computes (train, evaluate, bench).
struct KernelOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Kernel threads per process (1 when ranks fill the cores).")
    var threads: Int = 1

    func validate() throws {
        // The pool's limit (Sources/CKernels/threads.c): refused here rather than silently capped.
        guard (1...64).contains(threads) else { throw ValidationError("--threads \(threads): use 1 to 64 kernel threads per process") }
    }
}

/// Options every command that reads MNIST shares.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Directory holding the four IDX files under MNIST's names (raw or .gz), and optionally classes.txt; MNIST by default (docs/data.md).")
    var dataDir: String = "data/mnist"
}

/// The checkpoint every command that reads one takes (evaluate, predict; inspect as its argument).
struct CheckpointOption: ParsableArguments {
    /// Where `digits train` leaves the name of its newest checkpoint by default.
    static let defaultPath = "checkpoints/latest"

    @Option(help: "The trained checkpoint: a .safetensors file, a checkpoint directory (its newest), or its latest file.")
    var checkpoint: String = CheckpointOption.defaultPath

    @Option(help: weightsHelp) var weights: TrainedModel.Weights = .selected

    /// The checkpoint file itself (`CheckpointStore.resolve`).
    func file() throws -> String { try resolveCheckpoint(checkpoint) }
}

/// `CheckpointStore.resolve`, saying what to do when the default is missing (nothing trained here yet).
func resolveCheckpoint(_ path: String) throws -> String {
    do {
        return try CheckpointStore.resolve(path: path)
    } catch let error as CheckpointError where path == CheckpointOption.defaultPath && error.path == path {
        throw CommandError("\(error) (nothing trained in this directory yet: run digits train first, or name a checkpoint)")
    }
}

/// Runs a command body, turning a thrown error into one line on stderr and a non-zero exit.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("digits: error: \(error)")
        throw ExitCode.failure
    }
}

/// The kernel threads of this process, once DIGITS_ISA (if set) is known to be followed: a kernel
/// set the CPU cannot run, or a misspelt one, is an error rather than a silent fallback.
func startKernels(threads: Int) throws {
    if let problem = Kernels.isaProblem { throw CommandError(problem) }
    // The pool's limit (Sources/CKernels/threads.c): refused here rather than silently capped.
    guard (1...64).contains(threads) else { throw CommandError("--threads \(threads): use 1 to 64 kernel threads per process") }
    Kernels.setThreads(threads)
}

/// Runs a command body as one rank of the world (a world of one without mpirun). An error on
/// any rank ends every rank with a sentence naming the rank; nobody is left waiting in a collective.
/// A stop request (SIGINT/SIGTERM) ended the run cleanly after a checkpoint; the exit status is
/// the one a shell gives a command stopped by that signal (130, 143), so scripts and schedulers
/// read "interrupted".
struct Interrupted: Error {
    let signal: Int32
}

func runAsRank(collectiveTimeout: Double? = nil, _ body: (Communicator) throws -> Void) throws {
    let communicator: Communicator
    do {
        communicator = try makeWorldCommunicator(timeout: collectiveTimeout)
    } catch {
        printError("digits: error: cannot start MPI: \(error)")
        throw ExitCode.failure
    }
    do {
        try body(communicator)
    } catch let mismatch as ConfigurationCheck.Mismatch {
        // Every rank found the same mismatch: rank 0 says it, all leave together without MPI_Abort.
        if communicator.isRoot { printError("digits: error: \(mismatch)") }
        (communicator as? MPICommunicator)?.finalize()
        throw ExitCode.failure
    } catch let interrupted as Interrupted {
        // Every rank stopped after the same step and the checkpoint is written: leave together.
        (communicator as? MPICommunicator)?.finalize()
        throw ExitCode(128 + interrupted.signal)
    } catch let exit as ExitCode {
        if communicator.size > 1 && exit != .success { communicator.abort("digits: \(communicator.rankDescription): stopping", code: exit.rawValue) }
        throw exit
    } catch {
        if communicator.size > 1 {
            communicator.abort("digits: \(communicator.rankDescription): error: \(error)", code: 1)
        }
        printError("digits: error: \(error)")
        throw ExitCode.failure
    }
    (communicator as? MPICommunicator)?.finalize()
}
