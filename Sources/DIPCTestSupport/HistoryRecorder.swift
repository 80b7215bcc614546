import Synchronization

/// Collects the operations of many client threads into one `OperationHistory`, with
/// invoke and reply times from one monotonic clock.
///
/// Contract:
/// - `invoke` stamps the start (call it right before sending the request) and returns a
///   ticket; `complete` stamps the reply time (call it right after the reply was read)
///   and records the operation. Both are safe from any thread.
/// - An operation invoked but never completed (its thread gave up or died) appears in
///   `history()` as `.unknown("no reply recorded")` with no reply time.
/// - Times are nanoseconds since the recorder was made.
public final class HistoryRecorder: Sendable {
    /// A started operation, handed back to `complete`.
    public struct Ticket: Sendable {
        fileprivate let index: Int
        /// Monotonic nanoseconds at invocation.
        public let invoked: UInt64
    }

    private struct State {
        var operations: [HistoryOperation] = []
        var completed: [Bool] = []
        /// Acknowledged operations per client so far.
        var acknowledged: [Int: Int] = [:]
    }

    private let origin = ContinuousClock.now
    private let state = Mutex(State())
    private let initialStates: Mutex<[Int: OperationHistory.InitialState]>

    /// A recorder whose history starts from `initialStates` (see `OperationHistory`).
    public init(initialStates: [Int: OperationHistory.InitialState] = [:]) {
        self.initialStates = Mutex(initialStates)
    }

    /// Nanoseconds since the recorder was made (monotonic).
    public func now() -> UInt64 {
        let elapsed = ContinuousClock.now - origin
        let (seconds, attoseconds) = elapsed.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }

    /// Records that `client` is about to send `kind` (with `argument` for `w`/`p`) on `mailbox`.
    public func invoke(client: Int, mailbox: Int, kind: HistoryOperation.Kind, argument: String? = nil) -> Ticket {
        let invoked = now()
        let operation = HistoryOperation(
            client: client, mailbox: mailbox, kind: kind, argument: argument, invoked: invoked, replied: nil,
            result: .unknown("no reply recorded"))
        let index = state.withLock { state in
            state.operations.append(operation)
            state.completed.append(false)
            return state.operations.count - 1
        }
        return Ticket(index: index, invoked: invoked)
    }

    /// Records the reply of the operation `ticket` started.
    public func complete(_ ticket: Ticket, _ result: HistoryOperation.Result) {
        let replied = now()
        state.withLock { state in
            precondition(!state.completed[ticket.index], "operation completed twice")
            state.completed[ticket.index] = true
            state.operations[ticket.index].replied = replied
            state.operations[ticket.index].result = result
            if state.operations[ticket.index].acknowledgedVersion != nil {
                state.acknowledged[state.operations[ticket.index].client, default: 0] += 1
            }
        }
    }

    /// How many operations of each client were acknowledged so far (clients with none
    /// are left out).
    public func acknowledgedPerClient() -> [Int: Int] {
        state.withLock { $0.acknowledged }
    }

    /// Sets the state `mailbox` was in before the first operation.
    public func setInitialState(_ initial: OperationHistory.InitialState, of mailbox: Int) {
        initialStates.withLock { $0[mailbox] = initial }
    }

    /// Everything recorded so far.
    public func history() -> OperationHistory {
        OperationHistory(operations: state.withLock { $0.operations }, initialStates: initialStates.withLock { $0 })
    }
}
