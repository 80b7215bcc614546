/// A recorded run: every operation clients made, and each mailbox's state before the
/// first of them. What `LinearizabilityChecker` checks.
///
/// Contract:
/// - A mailbox is used either as a register (`r`/`w` only) or as a queue (`p`/`c`
///   only) within one history; the checker reports a mailbox that mixes them as
///   unsupported rather than guessing.
/// - `initialStates` gives a mailbox's VERSION and content when the history began; a
///   mailbox missing there started never written (`""`, VERSION 0). A queue must start
///   empty (its `value` is ignored); a register's initial value need not be unique.
public struct OperationHistory: Sendable, Equatable {
    /// A mailbox's state before the history's first operation.
    public struct InitialState: Sendable, Equatable {
        /// The register's content (for a queue: ignored, the queue is empty).
        public var value: String
        public var version: UInt64
        public init(value: String = "", version: UInt64 = 0) {
            self.value = value
            self.version = version
        }
    }

    public var operations: [HistoryOperation]
    public var initialStates: [Int: InitialState]

    public init(operations: [HistoryOperation] = [], initialStates: [Int: InitialState] = [:]) {
        self.operations = operations
        self.initialStates = initialStates
    }

    /// The state `mailbox` began in.
    public func initialState(of mailbox: Int) -> InitialState { initialStates[mailbox] ?? InitialState() }

    /// The operations on each mailbox, in recording order.
    public var operationsByMailbox: [Int: [HistoryOperation]] { Dictionary(grouping: operations, by: \.mailbox) }

    /// How many operations of each kind, e.g. `["r": 300, "w": 310, ...]`.
    public var kindCounts: [String: Int] {
        Dictionary(grouping: operations, by: \.kind.rawValue).mapValues(\.count)
    }

    /// How many operations ended each way, e.g. `["ok": 900, "unknown": 3, ...]`.
    public var resultCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for operation in operations {
            let key: String
            switch operation.result {
            case .ok: key = "ok"
            case .empty: key = "empty"
            case .failed: key = "failed"
            case .unknown: key = "unknown"
            }
            counts[key, default: 0] += 1
        }
        return counts
    }
}
