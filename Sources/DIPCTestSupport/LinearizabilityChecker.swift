/// Decides whether a recorded history (`OperationHistory`) of DIPC mailboxes is
/// linearizable (SPEC §3, §4), mailbox by mailbox, and says why when it is not.
///
/// A register mailbox (`r`/`w`, and watches, checked as reads) holds one value and a
/// VERSION that counts its changes; a queue mailbox (`p`/`c`) is a FIFO whose VERSION
/// counts pushes and takes. VERSION is the order of a mailbox's changes, so instead of
/// searching all orders (exponential) the checker reads the order off the replies and
/// checks it, in O(n log n) per mailbox.
///
/// Assumed: the history holds every operation any client made on its mailboxes after
/// their `initialStates`; written and pushed values are unique; VERSION grows by
/// exactly one per change (SPEC §2). Under these, a history this checker rejects is
/// not linearizable.
///
/// Checked, for a register:
/// - acknowledged writes have distinct VERSIONs above the initial one (two writes with
///   one VERSION: an acknowledged write was lost);
/// - a read returning VERSION V returns the value of the write that produced V (the
///   initial value when V is the initial VERSION): never a value no write wrote, nor
///   that of a write that failed, nor a write's value under another VERSION; a write of
///   unknown outcome that a read saw happened, with that read's VERSION (one VERSION per
///   write, one write per VERSION);
/// - real time: an operation that completed before another was invoked is ordered
///   before it (a read's VERSION is at least that of everything completed before it was
///   invoked, a write's is above it): this catches stale reads;
/// - every VERSION between the initial one and the highest seen was produced by some
///   write: those no acknowledged or observed write owns are matched to distinct
///   unobserved writes of unknown outcome invoked before anything with that VERSION or
///   higher had completed.
/// Checked, for a queue (which must start empty):
/// - acknowledged pushes and takes have distinct VERSIONs above the initial one, and
///   real time orders them as VERSION does;
/// - every take returns a message that a push which did not fail sent to this mailbox,
///   with a VERSION above the push's and not before the push was invoked; no message is
///   returned by two takes; a push of unknown outcome whose message was taken had a
///   free VERSION below the take's;
/// - FIFO: messages of pushes ordered by VERSION, or by real time, are taken in that
///   order;
/// - a take answering `err empty` was not invoked after a message was acknowledged as
///   pushed and answered before that message's take was invoked;
/// - VERSIONs no acknowledged change owns are matched to distinct changes of unknown
///   outcome (as for registers);
/// - every acknowledged push that was not delivered, but had to be gone because a
///   message pushed after it was taken, was removed by a distinct take of unknown
///   outcome invoked before that take replied;
/// - with `expectDrainedQueues`: the history has a take answering `err empty` invoked
///   after every acknowledged change completed, and every acknowledged push was
///   delivered exactly once, or removed undelivered by a distinct take of unknown
///   outcome invoked before the message had to be gone (as above, or before the queue
///   was found empty); nothing never pushed was delivered.
///
/// Unknown outcomes are handled soundly: such an operation may have taken effect at any
/// instant after its invocation, or never (so its error reply time is not used).
///
/// Not checked (a history can pass and still not be linearizable only through these):
/// - the joint placement of all unknown-outcome changes: each VERSION gap, each
///   unknown push that was seen, and each undelivered message gets a change of unknown
///   outcome under its own necessary condition, but one change could be counted for
///   two of these needs (e.g. for a gap and for removing a message);
/// - `err empty` answers beyond the case above (a message certainly there all along),
///   `err full` answers (capacity depends on message sizes), whether a watch waited as
///   long as it should have (it is checked as a plain read), `r` on queues;
/// - reads of unknown outcome (they impose nothing); failed writes and pushes only in
///   that no read or take may return their value;
/// - mailboxes used both as register and queue (reported `.unsupported`), queues that
///   do not start empty, and values that are not unique (reported `.unsupported`).
public enum LinearizabilityChecker {
    /// What a check found.
    public struct Report: Sendable, CustomStringConvertible {
        public var violations: [HistoryViolation]
        /// Operations looked at (every operation of the history).
        public var operationsChecked: Int
        /// Mailboxes checked as registers and as queues.
        public var registers: [Int]
        public var queues: [Int]

        public var isLinearizable: Bool { violations.isEmpty }

        /// A summary line, then the first `limit` violations.
        public func summary(limit: Int = 20) -> String {
            var lines = ["\(operationsChecked) operations on \(registers.count) registers and \(queues.count) queues: \(violations.count) violations"]
            lines += violations.prefix(limit).map(\.description)
            if violations.count > limit { lines.append("... and \(violations.count - limit) more") }
            return lines.joined(separator: "\n")
        }

        public var description: String { summary() }
    }

    /// Checks `history` mailbox by mailbox. `expectDrainedQueues`: the history ends with
    /// each queue drained (see the type's comment).
    public static func check(_ history: OperationHistory, expectDrainedQueues: Bool = false) -> Report {
        var report = Report(violations: [], operationsChecked: history.operations.count, registers: [], queues: [])
        for (mailbox, operations) in history.operationsByMailbox.sorted(by: { $0.key < $1.key }) {
            let usesRegister = operations.contains { $0.kind.isRead || $0.kind == .write }
            let usesQueue = operations.contains { $0.kind == .push || $0.kind == .take }
            let initial = history.initialState(of: mailbox)
            if usesRegister && usesQueue {
                report.violations.append(HistoryViolation(.unsupported, mailbox: mailbox, operations: [], "the mailbox is used both as a register (r/w) and as a queue (p/c)"))
            } else if usesQueue {
                report.queues.append(mailbox)
                report.violations += QueueHistoryCheck.violations(
                    mailbox: mailbox, operations: operations, initial: initial, expectDrained: expectDrainedQueues)
            } else {
                report.registers.append(mailbox)
                report.violations += RegisterHistoryCheck.violations(mailbox: mailbox, operations: operations, initial: initial)
            }
        }
        return report
    }
}
