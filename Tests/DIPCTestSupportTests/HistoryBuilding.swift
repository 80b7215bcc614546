import DIPCTestSupport

/// Short constructors for hand-written histories: `span` is invoke...reply in the
/// history's clock; `unknown` operations keep no reply time.
enum H {
    static func write(_ value: String, _ span: ClosedRange<UInt64>, version: UInt64, client: Int = 0, mailbox: Int = 0) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: .write, argument: value, invoked: span.lowerBound, replied: span.upperBound, result: .ok(value: nil, version: version))
    }

    static func read(_ span: ClosedRange<UInt64>, _ value: String, version: UInt64, client: Int = 1, mailbox: Int = 0) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: .read, invoked: span.lowerBound, replied: span.upperBound, result: .ok(value: value, version: version))
    }

    static func push(_ value: String, _ span: ClosedRange<UInt64>, version: UInt64, client: Int = 0, mailbox: Int = 1) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: .push, argument: value, invoked: span.lowerBound, replied: span.upperBound, result: .ok(value: nil, version: version))
    }

    static func take(_ span: ClosedRange<UInt64>, _ value: String, version: UInt64, client: Int = 1, mailbox: Int = 1) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: .take, invoked: span.lowerBound, replied: span.upperBound, result: .ok(value: value, version: version))
    }

    static func empty(_ span: ClosedRange<UInt64>, client: Int = 1, mailbox: Int = 1) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: .take, invoked: span.lowerBound, replied: span.upperBound, result: .empty)
    }

    /// An operation whose outcome is unknown, invoked at `invoked` (`argument` for w/p).
    static func unknown(_ kind: HistoryOperation.Kind, _ argument: String? = nil, invoked: UInt64, client: Int = 2, mailbox: Int) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: kind, argument: argument, invoked: invoked, replied: nil, result: .unknown("connection dropped"))
    }

    static func failed(_ kind: HistoryOperation.Kind, _ argument: String?, _ span: ClosedRange<UInt64>, client: Int = 2, mailbox: Int) -> HistoryOperation {
        HistoryOperation(client: client, mailbox: mailbox, kind: kind, argument: argument, invoked: span.lowerBound, replied: span.upperBound, result: .failed("unavailable"))
    }

    static func check(_ operations: [HistoryOperation], drained: Bool = false, initial: [Int: OperationHistory.InitialState] = [:]) -> LinearizabilityChecker.Report {
        LinearizabilityChecker.check(OperationHistory(operations: operations, initialStates: initial), expectDrainedQueues: drained)
    }
}

extension LinearizabilityChecker.Report {
    /// The kinds of violation found, in order.
    var kinds: [HistoryViolation.Kind] { violations.map(\.kind) }
}
