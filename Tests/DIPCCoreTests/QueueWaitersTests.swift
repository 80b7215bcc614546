import Glibc
import Synchronization
import Testing

@testable import DIPCCore

/// The waiting lines of `QueueWaiters`: ticket bookkeeping (departures skipped, voids,
/// forgetting a dead slot) and arrival-order service across threads.
@Suite("queue waiting lines")
struct QueueWaitersTests {
    @Test("the head skips tickets that left before their turn; a departure beyond the window voids the line")
    func bookkeeping() throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: .fifo)
        let line = WaiterLine(coordinator.record(0), .consumers)
        let tickets = (0..<4).map { _ in line.join() }
        #expect(line.serving == tickets[0])
        line.leave(tickets[1])  // gives up behind the head
        line.leave(tickets[2])
        #expect(line.serving == tickets[0], "a departure behind the head moved the head")
        line.leave(tickets[0])
        #expect(line.serving == tickets[3], "the head's departure did not skip the departed tickets")
        line.leave(tickets[3])
        #expect(line.serving == line.next, "the line is not empty after everyone left")

        // The other line of the mailbox is independent.
        #expect(WaiterLine(coordinator.record(0), .producers).next == 0)

        // More than `window` places back: the departure voids every ticket.
        let crowd = (0..<Int(WaiterLine.window) + 4).map { _ in line.join() }
        line.leave(crowd.last!)
        #expect(line.serving == line.next, "a far departure did not void the line")
        #expect(crowd.allSatisfy { WaiterLine.isPassed($0, serving: line.serving) })
        for ticket in crowd { line.leave(ticket) }  // passed tickets leave without effect
        #expect(line.serving == line.next)
    }

    @Test("forgetting a slot voids the lines it was a member of, and only those")
    func forgetSlot() throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: .fifo)
        let record = coordinator.record(0)
        let consumers = WaiterLine(record, .consumers), producers = WaiterLine(record, .producers)
        consumers.addMember(3)
        let held = (0..<3).map { _ in consumers.join() }
        let other = producers.join()
        _ = producers.join()
        QueueWaiters.forget(slot: 5, in: record)
        #expect(consumers.serving == held[0], "forgetting a slot that was no member changed the line")
        QueueWaiters.forget(slot: 3, in: record)
        #expect(consumers.serving == consumers.next && consumers.members & (1 << 3) == 0)
        #expect(producers.serving == other, "the producers' line, without slot 3, was voided too")
    }

    @Test("waiters on threads get items in the order they queued; one that times out in line leaves no hole")
    func arrivalOrder() throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: .fifo)
        let waiters = QueueWaiters(coordinator: coordinator)
        let items = Mutex<[Int]>([])
        let got = Mutex<[Int: Int]>([:])
        let timedOut = TestFlag()
        var threads: [TestThread] = []
        for k in 0..<6 {
            let seconds: Double = k == 2 ? 0.3 : 20
            threads.append(TestThread {
                let deadline = monotonicSeconds() + seconds
                let outcome = try? waiters.waitInLine(
                    .consumers, mailbox: 0, until: deadline, shouldAbandon: { false },
                    couldSucceed: { items.withLock { !$0.isEmpty } }
                ) {
                    items.withLock { $0.isEmpty ? nil : $0.removeFirst() }
                }
                switch outcome {
                case let .done(item)?: got.withLock { $0[k] = item }
                case .timedOut?: timedOut.set()
                default: break
                }
            })
            // The next thread starts only once this one holds its ticket (tickets handed out
            // count up, whether or not thread 2 has given up already).
            #expect(waitUntil(5) { waiters.line(.consumers, 0).next == UInt32(k + 1) }, "thread \(k) never queued")
        }
        #expect(waitUntil(5) { timedOut.isSet }, "thread 2 (0.3 s) did not time out")
        for item in 0..<5 {
            items.withLock { $0.append(item) }
            coordinator.notifyChange(of: 0)
        }
        for thread in threads { #expect(thread.join(within: 10)) }
        #expect(got.withLock { $0 } == [0: 0, 1: 1, 3: 2, 4: 3, 5: 4], "items by thread: \(got.withLock { $0 })")
        #expect(waiters.queued == 0)
        let line = waiters.line(.consumers, 0)
        #expect(line.serving == line.next && line.members == 0, "the line is not empty and memberless at the end")
    }

    @Test("a ticket whose holder vanished is passed: unclaimed at the head (skipped after the grace), or held by a dead member slot (voided)")
    func vanishedTickets() throws {
        for deadMember in [false, true] {
            let region = try CoordinatorTestRegion(mailboxes: 1)
            // Slot 7 is a dead server; this one is slot 0.
            let coordinator = region.coordinator(policy: .fifo, isSlotAlive: { $0 != 7 })
            let waiters = QueueWaiters(coordinator: coordinator)
            let line = waiters.line(.consumers, 0)
            if deadMember { line.addMember(7) }
            let orphan = line.join()  // never claimed, never left
            var item: [Int] = [42]
            let outcome = try waiters.waitInLine(
                .consumers, mailbox: 0, until: monotonicSeconds() + 10, shouldAbandon: { false },
                couldSucceed: { !item.isEmpty }
            ) {
                item.isEmpty ? nil : item.removeFirst()
            }
            guard case .done(42) = outcome else {
                Issue.record("dead member \(deadMember): the waiter behind the orphan ticket got \(outcome)")
                continue
            }
            #expect(WaiterLine.isPassed(orphan, serving: line.serving), "dead member \(deadMember): the orphan ticket is still in line")
            #expect(line.members & (1 << 7) == 0, "dead member \(deadMember): the dead slot is still a member")
        }
    }

    @Test("a waiter whose deadline passes behind a dead server's ticket keeps its place while an item is there (and gets it), and times out at once when none is")
    func deadlinePassesBehindAStalledHead() throws {
        for itemThere in [true, false] {
            let region = try CoordinatorTestRegion(mailboxes: 1)
            // Slot 7 is a dead server holding the head ticket; this one is slot 0. With
            // no item, slot 7 is seen dead only after 2 s, so a waiter that waited for the
            // voiding instead of its deadline shows (whatever the machine's load).
            let deadFrom = monotonicSeconds() + (itemThere ? 0 : 2)
            let coordinator = region.coordinator(policy: .fifo, isSlotAlive: { $0 != 7 || monotonicSeconds() < deadFrom })
            let waiters = QueueWaiters(coordinator: coordinator)
            let line = waiters.line(.consumers, 0)
            line.addMember(7)
            let orphan = line.join()
            line.claim(orphan)  // claimed: only the dead member's voiding passes it
            var item: [Int] = itemThere ? [42] : []
            let began = monotonicSeconds()
            // The deadline (10 ms) passes long before the liveness check (100 ms, or 2 s
            // with no item) voids the dead member's ticket.
            let outcome = try waiters.waitInLine(
                .consumers, mailbox: 0, until: began + 0.01, shouldAbandon: { false },
                couldSucceed: { !item.isEmpty }
            ) {
                item.isEmpty ? nil : item.removeFirst()
            }
            let took = monotonicSeconds() - began
            if itemThere {
                guard case .done(42) = outcome else {
                    Issue.record("with an item queued all along, the waiter got \(outcome) after \(took) s")
                    continue
                }
                #expect(WaiterLine.isPassed(orphan, serving: line.serving), "the dead member's ticket is still in line")
            } else {
                guard case .timedOut = outcome else {
                    Issue.record("with no item, the waiter got \(outcome)")
                    continue
                }
                #expect(took < 1.5, "no item: it timed out after \(took) s, not at its deadline")
            }
        }
    }
}
