/// One way a history broke linearizability, as `LinearizabilityChecker` reports it:
/// what kind of violation, on which mailbox, the operations involved, and why.
public struct HistoryViolation: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The history cannot be checked as given (a mailbox used both as register and
        /// queue, two writes or pushes of one value, a queue not starting empty).
        case unsupported
        /// A read returned a VERSION (or value) older than that of an operation that
        /// completed before the read was invoked.
        case staleRead
        /// Two changes ordered by real time got VERSIONs in the other order (or equal).
        case realTimeOrder
        /// An acknowledged write was lost: two acknowledged writes share a VERSION, or a
        /// read shows an older write's value under the VERSION of a newer acknowledged one.
        case lostWrite
        /// A read returned a value and VERSION no recorded write could have produced
        /// together (a value never written, or written by a write that failed, or under
        /// another VERSION than its write's).
        case impossibleRead
        /// Two acknowledged changes of a queue share a VERSION.
        case duplicateVersion
        /// A VERSION between the first and the last seen that no recorded change of
        /// unknown outcome could have produced: a change happened that nobody made.
        case unexplainedVersion
        /// A take returned a message that was never pushed, or whose push failed.
        case takeOfUnpushedMessage
        /// A take returned a message before its push could have happened.
        case takeBeforePush
        /// Two acknowledged takes returned the same message.
        case duplicateTake
        /// Messages were taken in another order than pushed (by VERSION or real time).
        case fifoOrder
        /// A take answered `err empty` while a message was certainly in the queue.
        case emptyWhileNotEmpty
        /// After draining, an acknowledged push was never delivered, and no take of
        /// unknown outcome could have removed it.
        case lostPush
        /// Draining was expected but the history does not end with a take that found
        /// the queue empty after every acknowledged change.
        case notDrained
    }

    public var kind: Kind
    public var mailbox: Int
    /// The operations involved, in the order the explanation names them.
    public var operations: [HistoryOperation]
    /// Why, in words.
    public var explanation: String

    public init(_ kind: Kind, mailbox: Int, operations: [HistoryOperation], _ explanation: String) {
        self.kind = kind
        self.mailbox = mailbox
        self.operations = operations
        self.explanation = explanation
    }

    /// The kind, the mailbox, the explanation, then each operation on its own line.
    public var description: String {
        (["\(kind.rawValue) on mailbox \(mailbox): \(explanation)"] + operations.map { "    \($0)" })
            .joined(separator: "\n")
    }
}
