import ArgumentParser
import Datasets

@main
struct Digits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digits",
        abstract: "Train a convolutional network on handwritten digits (MNIST), alone or data-parallel under mpirun.",
        version: digitsVersion,
        subcommands: [Train.self, Bench.self, InspectData.self]
    )
}

/// Options every command that reads MNIST shares.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "Directory holding the four MNIST IDX files (raw or .gz).")
    var dataDir: String = "data/mnist"
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
