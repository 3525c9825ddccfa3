import Collective

/// Start-up agreement: every rank states what it will compute (configuration, data checksums,
/// program version); all ranks exchange the statements and compare them with rank 0's. Any
/// difference stops every rank with a sentence naming the rank and the field, instead of a hang
/// in an allreduce whose sizes or step counts disagree.
public enum ConfigurationCheck {
    public struct Mismatch: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Throws `Mismatch` on every rank (the same sentence) when any rank differs from rank 0.
    public static func verify(_ fields: [(String, String)], communicator: Communicator) throws {
        guard communicator.size > 1 else { return }
        // Field separator and pair separator that cannot occur in the values we send.
        let statement = fields.map { "\($0.0)\u{1F}\($0.1)" }.joined(separator: "\u{1E}")
        let all = try communicator.allgather(statement)
        let reference = parse(all[0])
        var problems: [String] = []
        for (rank, text) in all.enumerated().dropFirst() {
            let theirs = parse(text)
            for (name, value) in reference where theirs[name] != value {
                problems.append("rank \(rank) differs from rank 0 in \(name): rank \(rank) has '\(theirs[name] ?? "(missing)")', rank 0 has '\(value)'")
            }
            for name in theirs.keys where reference[name] == nil {
                problems.append("rank \(rank) has \(name), which rank 0 does not")
            }
        }
        if !problems.isEmpty {
            throw Mismatch(description: "ranks disagree on the run; stopping all \(communicator.size):\n  "
                           + problems.sorted().joined(separator: "\n  "))
        }
    }

    private static func parse(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: "\u{1E}", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "\u{1F}", maxSplits: 1, omittingEmptySubsequences: false)
            result[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        return result
    }
}
