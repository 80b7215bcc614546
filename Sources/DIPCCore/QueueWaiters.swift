import Atomics
import Glibc

/// Which of a mailbox's two waiting lines a request joins: consumers (`c`) wait for a
/// message, producers (`p`) for room.
public enum QueueLineKind: Int, Sendable {
    case consumers = 0
    case producers = 1
}

/// One waiting line of one mailbox: a ticket queue in the mailbox's `CoordinatorRecord`
/// (`CoordinatorRecordLayout.Field.consumerLine` / `.producerLine`, bytes 136..<192),
/// shared by every thread of every server attached to the store. No mutex: every word
/// is a sequentially consistent atomic. The words of a line (`next`, `serving`,
/// `members`, `claim`, `departed`) are laid out in `CoordinatorRecordLayout.Line`.
///
/// Rules: only the head (`serving == ticket`) may attempt its push or take. The head
/// leaves by advancing `serving`, skipping tickets marked departed. A waiter that gives
/// up before its turn marks its ticket departed (or, more than 96 places back, voids
/// the line: `serving` jumps to `next` and every waiter queues again). A waiter whose
/// ticket was passed over (void, or a skip after a stall) queues again at the back.
struct WaiterLine {
    private typealias Layout = CoordinatorRecordLayout.Line

    static let window = UInt32(Layout.departedWindow)

    private static let nextOffset = Layout.next.offset
    private static let servingOffset = Layout.serving.offset
    private static let membersOffset = Layout.members.offset
    private static let claimOffset = Layout.claim.offset
    private static let departedOffset = Layout.departed.offset

    let base: UnsafeMutableRawPointer

    init(_ record: CoordinatorRecord, _ kind: QueueLineKind) {
        base = record.base + CoordinatorRecordLayout.line(kind).offset
    }

    @inline(__always)
    private func word(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic<UInt32>(at: (base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    var servingPointer: UnsafeMutablePointer<UInt32> {
        (base + WaiterLine.servingOffset).assumingMemoryBound(to: UInt32.self)
    }

    var serving: UInt32 { word(WaiterLine.servingOffset).load(ordering: .sequentiallyConsistent) }
    var next: UInt32 { word(WaiterLine.nextOffset).load(ordering: .sequentiallyConsistent) }
    var members: UInt32 { word(WaiterLine.membersOffset).load(ordering: .sequentiallyConsistent) }

    /// Whether `ticket` is behind the head already (wrapping comparison).
    static func isPassed(_ ticket: UInt32, serving: UInt32) -> Bool {
        Int32(bitPattern: serving &- ticket) > 0
    }

    func addMember(_ slot: Int) {
        _ = word(WaiterLine.membersOffset).loadThenBitwiseOr(with: 1 << UInt32(slot), ordering: .sequentiallyConsistent)
    }

    func removeMember(_ slot: Int) {
        _ = word(WaiterLine.membersOffset).loadThenBitwiseAnd(with: ~(1 << UInt32(slot)), ordering: .sequentiallyConsistent)
    }

    /// Takes a ticket at the back of the line.
    func join() -> UInt32 {
        word(WaiterLine.nextOffset).loadThenWrappingIncrement(ordering: .sequentiallyConsistent)
    }

    /// The head announces itself, so that waiters behind it know it is alive. (Stored
    /// as ticket + 1, so that the zeroed word of a new store claims nothing.)
    func claim(_ ticket: UInt32) {
        word(WaiterLine.claimOffset).store(ticket &+ 1, ordering: .sequentiallyConsistent)
    }

    /// Whether the head `ticket` has announced itself.
    func isClaimed(_ ticket: UInt32) -> Bool {
        word(WaiterLine.claimOffset).load(ordering: .sequentiallyConsistent) == ticket &+ 1
    }

    private func departedBit(_ ticket: UInt32) -> (offset: Int, mask: UInt32) {
        let index = ticket % WaiterLine.window
        return (WaiterLine.departedOffset + Int(index / 32) * 4, 1 << (index % 32))
    }

    private func markDeparted(_ ticket: UInt32) {
        let (offset, mask) = departedBit(ticket)
        _ = word(offset).loadThenBitwiseOr(with: mask, ordering: .sequentiallyConsistent)
    }

    /// Clears `ticket`'s departed mark; true when this call cleared it (the caller then
    /// owns that ticket's turn).
    private func takeDepartedMark(_ ticket: UInt32) -> Bool {
        let (offset, mask) = departedBit(ticket)
        return word(offset).loadThenBitwiseAnd(with: ~mask, ordering: .sequentiallyConsistent) & mask != 0
    }

    /// The owner of the head ticket `ticket` leaves: the turn passes to the next ticket
    /// still present. Wakes the line.
    func advance(from ticket: UInt32) {
        var current = ticket
        let serving = word(WaiterLine.servingOffset)
        while serving.compareExchange(expected: current, desired: current &+ 1, ordering: .sequentiallyConsistent).exchanged {
            current &+= 1
            // A ticket that left before its turn is skipped. (Its owner marks first, then
            // rereads `serving`; this side moves `serving`, then reads the mark: one of
            // the two sees the other.)
            guard current != next, takeDepartedMark(current) else { break }
        }
        // Nobody holds a later ticket: nobody sleeps on `serving` (a joiner that takes
        // `current` after this load finds itself at the head without sleeping).
        if next != current { Futex.wakeAll(servingPointer) }
    }

    /// The owner of `ticket` leaves the line, whether or not its turn came.
    func leave(_ ticket: UInt32) {
        let head = serving
        if WaiterLine.isPassed(ticket, serving: head) { return }
        if head == ticket {
            advance(from: ticket)
            return
        }
        if ticket &- head >= WaiterLine.window {
            voidTickets()
            return
        }
        markDeparted(ticket)
        if serving == ticket && takeDepartedMark(ticket) { advance(from: ticket) }
    }

    /// Every outstanding ticket is passed over: `serving` jumps to `next` and waiters
    /// queue again. Used when a ticket's owner can no longer leave by itself.
    func voidTickets() {
        let target = next
        let serving = word(WaiterLine.servingOffset)
        var current = serving.load(ordering: .sequentiallyConsistent)
        while Int32(bitPattern: target &- current) > 0 {
            let (exchanged, original) = serving.compareExchange(expected: current, desired: target, ordering: .sequentiallyConsistent)
            if exchanged { break }
            current = original
        }
        Futex.wakeAll(servingPointer)
    }

    /// Skips the head ticket `ticket` when it is still the head (its owner never claimed it).
    func skipHead(_ ticket: UInt32) {
        if serving == ticket { advance(from: ticket) }
    }
}

/// Arrival-order service for requests that wait in a mailbox's queue (`c` for a
/// message, `p` for room): one `WaiterLine` per mailbox and kind in the coordinator's
/// shared region, so the order holds across threads and server processes.
///
/// The fairness rule: every `c` (and every `p`) takes a ticket and may take (push) only
/// when its ticket is at the head of its mailbox's line. The head leaves as soon as it
/// has succeeded, its WAIT_MS has passed, or its client has gone; waiters that give up
/// earlier leave their place without holding anyone up. So a message goes to the
/// consumer that has waited longest, and room to the producer that has waited longest.
/// (The server sends requests with WAIT_MS 0 straight to the mailbox: they never wait.)
///
/// Nobody holds a lock while waiting: the head sleeps on the mailbox's change counter
/// (`Coordinator.waitForChange`, woken by a change from any server), the others on the
/// line's `serving` word.
///
/// Crashes: a server slot is recorded in `members` while its process has threads in the
/// line. A waiter that sees the line stand still for `Coordinator.livenessInterval`
/// checks the members and voids the line when one is dead (and `forget(slot:)` does the
/// same when a dead slot is purged); a head ticket nobody claims for
/// `unclaimedHeadGraceNanoseconds` (1 s) is skipped. Either way a dead ticket delays
/// the line only briefly; after a void the waiters queue again in the order they
/// notice it.
public final class QueueWaiters: @unchecked Sendable {
    /// After this long without the head claiming its turn, the waiters behind skip it.
    static let unclaimedHeadGraceNanoseconds: Int64 = 1_000_000_000

    let coordinator: Coordinator
    /// Per mailbox and kind: this process's threads in that line (`2 * mailboxes` words).
    private let localCounts: UnsafeMutablePointer<Int.AtomicRepresentation>
    private let mailboxes: Int
    private let queuedInThisProcess = ManagedAtomic<Int>(0)

    /// Requests of this process now in a line (holding a ticket).
    public var queued: Int { queuedInThisProcess.load(ordering: .relaxed) }

    public init(coordinator: Coordinator) {
        self.coordinator = coordinator
        mailboxes = coordinator.mailboxes
        localCounts = .allocate(capacity: max(2 * mailboxes, 1))
        localCounts.initialize(repeating: Int.AtomicRepresentation(0), count: max(2 * mailboxes, 1))
    }

    deinit {
        localCounts.deallocate()
    }

    private func localCount(_ kind: QueueLineKind, _ mailbox: Int) -> UnsafeAtomic<Int> {
        UnsafeAtomic<Int>(at: localCounts + (2 * mailbox + kind.rawValue))
    }

    func line(_ kind: QueueLineKind, _ mailbox: Int) -> WaiterLine {
        WaiterLine(coordinator.record(mailbox), kind)
    }

    /// This process has one more thread in the line: it is a member (before it takes a ticket).
    private func enter(_ kind: QueueLineKind, _ mailbox: Int, _ line: WaiterLine) {
        localCount(kind, mailbox).wrappingIncrement(ordering: .sequentiallyConsistent)
        line.addMember(coordinator.slot)
    }

    /// One thread fewer; the last one out removes the membership (and restores it when
    /// another thread entered meanwhile).
    private func exit(_ kind: QueueLineKind, _ mailbox: Int, _ line: WaiterLine) {
        let count = localCount(kind, mailbox)
        guard count.wrappingDecrementThenLoad(ordering: .sequentiallyConsistent) == 0 else { return }
        line.removeMember(coordinator.slot)
        if count.load(ordering: .sequentiallyConsistent) > 0 { line.addMember(coordinator.slot) }
    }

    /// Waits in `mailbox`'s `kind` line and, at its head, calls `attempt` until it returns
    /// a value, the monotonic `deadline` passes, or `shouldAbandon` returns true (asked
    /// before every try but the first). Between tries it holds no lock and sleeps at most
    /// `pollInterval` seconds. It always leaves the line before returning or throwing.
    ///
    /// Behind others once the deadline has passed, it times out only when
    /// `couldSucceed` (changing nothing) says false; otherwise it keeps its place until
    /// its turn. Takes pass "a message is queued" (any message serves any taker, so the
    /// turn comes once those ahead have theirs, and an `err empty` with messages queued
    /// all along is not linearizable, SPEC §3); pushes pass false (the room is kept for
    /// the pushes ahead).
    public func waitInLine<Value>(
        _ kind: QueueLineKind, mailbox: Int, until deadline: Double, pollInterval: Double = 0.1,
        shouldAbandon: () -> Bool, couldSucceed: () throws -> Bool, attempt: () throws -> Value?
    ) throws -> SharedStore.WaitOutcome<Value> {
        let line = line(kind, mailbox)
        enter(kind, mailbox, line)
        defer { exit(kind, mailbox, line) }
        var ticket = line.join()
        queuedInThisProcess.wrappingIncrement(ordering: .sequentiallyConsistent)
        defer {
            line.leave(ticket)
            queuedInThisProcess.wrappingDecrement(ordering: .sequentiallyConsistent)
        }
        var retrying = false
        var watch = StallWatch(serving: line.serving)
        while true {
            let head = line.serving
            if WaiterLine.isPassed(ticket, serving: head) {
                // Passed over by a recovery: queue again (still a member).
                line.addMember(coordinator.slot)
                ticket = line.join()
                continue
            }
            if retrying && shouldAbandon() { return .abandoned }
            let remaining = deadline - monotonicSeconds()
            if head == ticket {
                line.claim(ticket)
                let sequence = coordinator.changeSequence(of: mailbox)
                if let value = try attempt() { return .done(value) }
                if deadline - monotonicSeconds() <= 0 { return .timedOut }
                retrying = true
                let slice = min(deadline - monotonicSeconds(), pollInterval)
                coordinator.waitForChange(of: mailbox, from: sequence, timeoutNanoseconds: Int64(slice * 1e9))
            } else {
                if remaining <= 0, try !couldSucceed() { return .timedOut }
                retrying = true
                let slice = remaining > 0 ? min(remaining, pollInterval) : pollInterval
                Futex.wait(line.servingPointer, expected: head, timeoutNanoseconds: Int64(slice * 1e9))
                watch.check(line, coordinator: coordinator)
            }
        }
    }

    /// Forgets server `slot` (dead, or detaching) in both lines of the record: when it
    /// had threads in a line, their tickets are voided. Called from `Coordinator.purge`.
    static func forget(slot: Int, in record: CoordinatorRecord) {
        for kind in [QueueLineKind.consumers, .producers] {
            let line = WaiterLine(record, kind)
            guard line.members & (1 << UInt32(slot)) != 0 else { continue }
            line.removeMember(slot)
            line.voidTickets()
        }
    }

    /// What a waiter behind the head remembers to notice a line that stands still.
    private struct StallWatch {
        var serving: UInt32
        var since = monotonicNanoseconds()
        var lastLivenessCheck = monotonicNanoseconds()

        init(serving: UInt32) {
            self.serving = serving
        }

        mutating func check(_ line: WaiterLine, coordinator: Coordinator) {
            let now = monotonicNanoseconds()
            let head = line.serving
            if head != serving {
                serving = head
                since = now
                lastLivenessCheck = now
                return
            }
            if now - lastLivenessCheck >= Coordinator.livenessInterval {
                lastLivenessCheck = now
                var anyDead = false
                let members = line.members
                for other in 0..<Coordinator.maximumServers where other != coordinator.slot && members & (1 << UInt32(other)) != 0 {
                    if !coordinator.isSlotAlive(other) {
                        line.removeMember(other)
                        anyDead = true
                    }
                }
                if anyDead {
                    line.voidTickets()
                    return
                }
            }
            if now - since >= QueueWaiters.unclaimedHeadGraceNanoseconds && !line.isClaimed(head) {
                since = now
                line.skipHead(head)
            }
        }
    }
}
