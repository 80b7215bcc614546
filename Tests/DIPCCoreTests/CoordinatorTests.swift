import Glibc
import Synchronization
import Testing

@testable import DIPCCore

/// The readers-writer coordinator, in one process (threads, and two coordinators in
/// different slots sharing one region). Cross-process tests live in
/// CoordinatorCrossProcessTests.swift.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct CoordinatorTests {
    static let policies = CoordinatorPolicy.allCases

    @Test("layout: 64-byte multiples, mutex 64-byte aligned")
    func layout() {
        #expect(Coordinator.regionSize(mailboxes: 1) % 64 == 0)
        #expect(Coordinator.regionSize(mailboxes: 3) == 3 * Coordinator.regionSize(mailboxes: 1))
        #expect(CoordinatorRecord.stride % 64 == 0 && CoordinatorRecord.mutexOffset % 64 == 0)
        #expect(CoordinatorRecord.slotsOffset + Coordinator.maximumServers * CoordinatorRecord.slotStride <= CoordinatorRecord.stride)
        #expect(CoordinatorRecord.wakeOffset >= RobustMutex.reservedSize)
    }

    @Test("readers overlap", arguments: policies)
    func readersOverlap(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 2)
        let coordinators = [region.coordinator(policy: policy, slot: 0), region.coordinator(policy: policy, slot: 1)]
        let readers = 6
        let inside = TestCounter(0)
        let allMet = TestCounter(0)
        let threads = (0..<readers).map { index in
            TestThread {
                try? coordinators[index % 2].withReadAccess(to: 1) {
                    inside.add(1)
                    if waitUntil(5, { inside.value == readers }) {
                        allMet.add(1)
                    }
                }
            }
        }
        for thread in threads { #expect(thread.join()) }
        #expect(allMet.value == readers)
        #expect(try coordinators[0].stateSnapshot(of: 1).activeReaders == 0)
    }

    @Test("mailboxes are independent", arguments: policies)
    func mailboxesIndependent(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 2)
        let coordinator = region.coordinator(policy: policy)
        let entered = TestFlag()
        try coordinator.withWriteAccess(to: 0) {
            let other = TestThread {
                try? coordinator.withWriteAccess(to: 1) { entered.set() }
            }
            #expect(other.join(within: 5))
        }
        #expect(entered.isSet)
    }

    @Test("a writer excludes everybody under contention", arguments: policies)
    func writerExcludes(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinators = [region.coordinator(policy: policy, slot: 0), region.coordinator(policy: policy, slot: 7)]
        let readersInside = TestCounter(0)
        let writersInside = TestCounter(0)
        let violations = TestCounter(0)
        let writes = TestCounter(0)
        let sawSharedReads = TestFlag()
        let threadCount = 8
        let operations = 2000
        let threads = (0..<threadCount).map { index in
            TestThread {
                let coordinator = coordinators[index % 2]
                for op in 0..<operations {
                    if (op + index) % 4 == 0 {
                        try? coordinator.withWriteAccess(to: 0) {
                            if writersInside.add(1) != 1
                                || readersInside.value != 0
                            {
                                violations.add(1)
                            }
                            writes.add(1)
                            if op % 8 == 0 { sched_yield() }
                            writersInside.add(-1)
                        }
                    } else {
                        try? coordinator.withReadAccess(to: 0) {
                            if readersInside.add(1) > 1 {
                                sawSharedReads.set()
                            }
                            if writersInside.value != 0 {
                                violations.add(1)
                            }
                            if op % 8 == 0 { sched_yield() }
                            readersInside.add(-1)
                        }
                    }
                }
            }
        }
        for thread in threads { #expect(thread.join(within: 30)) }
        #expect(violations.value == 0)
        #expect(writes.value == threadCount * operations / 4)
        let state = try coordinators[0].stateSnapshot(of: 0)
        #expect(state.activeReaders == 0 && state.writer == nil && state.queued == 0, "\(state)")
    }

    /// Starts `body` on a thread and waits until the mailbox shows `queued` waiters.
    private func enqueue(
        _ coordinator: Coordinator, queued: Int, _ body: @escaping @Sendable () -> Void
    ) throws -> TestThread {
        let thread = TestThread(body)
        let reached = waitUntil(5) { ((try? coordinator.stateSnapshot(of: 0).queued) ?? -1) == queued }
        #expect(reached, "waiter \(queued) never queued")
        return thread
    }

    /// Runs an access that logs its entry and exit; readers named in `rendezvous`
    /// stay inside until all of them are in.
    private func access(
        _ coordinator: Coordinator, _ name: String, log: EventLog, rendezvous: Set<String>,
        inside: TestCounter
    ) -> @Sendable () -> Void {
        let write = name.hasPrefix("W")
        return { [inside] in
            let body = {
                log.append("+" + name)
                if rendezvous.contains(name) {
                    inside.add(1)
                    if !waitUntil(5, { inside.value == rendezvous.count }) {
                        log.append("timeout " + name)
                    }
                }
                log.append("-" + name)
            }
            if write { try? coordinator.withWriteAccess(to: 0, body) } else { try? coordinator.withReadAccess(to: 0, body) }
        }
    }

    @Test("fifo admits in arrival order, consecutive readers together")
    func fifoOrder() throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: .fifo)
        let log = EventLog()
        let inside = TestCounter(0)
        var threads: [TestThread] = []
        try coordinator.withWriteAccess(to: 0) {
            for (queued, name) in ["R1", "W2", "R3", "R4", "W5"].enumerated() {
                let body = access(coordinator, name, log: log, rendezvous: ["R3", "R4"], inside: inside)
                threads.append(try enqueue(coordinator, queued: queued + 1, body))
            }
            #expect(log.all.isEmpty)
        }
        for thread in threads { #expect(thread.join()) }
        let events = log.all
        try #require(events.count == 10, "\(events)")
        #expect(Array(events[0..<4]) == ["+R1", "-R1", "+W2", "-W2"], "\(events)")
        #expect(Set(events[4..<6]) == ["+R3", "+R4"], "\(events)")
        #expect(Set(events[6..<8]) == ["-R3", "-R4"], "\(events)")
        #expect(Array(events[8..<10]) == ["+W5", "-W5"], "\(events)")
    }

    @Test("phase-fair: a releasing writer admits every blocked reader before the next writer")
    func phaseFairOrder() throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: .phaseFair)
        let log = EventLog()
        let inside = TestCounter(0)
        var threads: [TestThread] = []
        try coordinator.withWriteAccess(to: 0) {
            for (queued, name) in ["R1", "W2", "R3", "R4", "W5"].enumerated() {
                let body = access(coordinator, name, log: log, rendezvous: ["R1", "R3", "R4"], inside: inside)
                threads.append(try enqueue(coordinator, queued: queued + 1, body))
            }
            let state = try coordinator.stateSnapshot(of: 0)
            #expect(state.blockedReaders == 3 && state.ticketHolders == 2, "\(state)")
        }
        for thread in threads { #expect(thread.join()) }
        let events = log.all
        try #require(events.count == 10, "\(events)")
        #expect(Set(events[0..<3]) == ["+R1", "+R3", "+R4"], "\(events)")
        #expect(Set(events[3..<6]) == ["-R1", "-R3", "-R4"], "\(events)")
        #expect(Array(events[6..<10]) == ["+W2", "-W2", "+W5", "-W5"], "\(events)")
    }

    @Test("a writer gets in while readers keep arriving", arguments: policies)
    func writerNotStarved(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: policy)
        let stop = TestFlag()
        let readerEntries = TestCounter(0)
        let readerThreads = 4
        let readers = (0..<readerThreads).map { _ in
            TestThread {
                while !stop.isSet {
                    try? coordinator.withReadAccess(to: 0) {
                        readerEntries.add(1)
                        busyPause(microseconds: 50)
                    }
                }
            }
        }
        defer {
            stop.set()
            for reader in readers { reader.join() }
        }
        try #require(waitUntil(5) { readerEntries.value > 200 }, "the readers are not running: \(readerEntries.value) entries")
        let writerSide = region.coordinator(policy: policy, slot: 1)
        for _ in 0..<5 {
            let atEntry = TestCounter(-1)
            let writer = TestThread {
                try? writerSide.withWriteAccess(to: 0) { atEntry.store(readerEntries.value) }
            }
            // Count the readers that enter once the writer is queued.
            let queued = waitUntil(5) {
                writer.isFinished || ((try? coordinator.stateSnapshot(of: 0).slots[1].tickets) ?? 0) == 1
            }
            let atQueue = readerEntries.value
            #expect(queued)
            #expect(writer.join(within: 5), "writer starved")
            if atEntry.value >= atQueue {
                let passed = atEntry.value - atQueue
                #expect(passed <= 2 * readerThreads, "\(passed) readers entered while the writer waited")
            }
        }
    }

    @Test("a reader gets in while writers keep arriving", arguments: policies)
    func readerNotStarved(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: policy)
        let stop = TestFlag()
        let writes = TestCounter(0)
        let writerThreads = 3
        let writers = (0..<writerThreads).map { _ in
            TestThread {
                while !stop.isSet {
                    try? coordinator.withWriteAccess(to: 0) {
                        writes.add(1)
                        busyPause(microseconds: 20)
                    }
                }
            }
        }
        defer {
            stop.set()
            for writer in writers { writer.join() }
        }
        try #require(waitUntil(5) { writes.value > 200 }, "the writers are not running: \(writes.value) writes")
        let readerSide = region.coordinator(policy: policy, slot: 1)
        for _ in 0..<5 {
            let atEntry = TestCounter(-1)
            let reader = TestThread {
                try? readerSide.withReadAccess(to: 0) { atEntry.store(writes.value) }
            }
            let queued = waitUntil(5) {
                guard !reader.isFinished, let slot = try? coordinator.stateSnapshot(of: 0).slots[1] else { return true }
                return slot.tickets + slot.blocked == 1
            }
            let atQueue = writes.value
            #expect(queued)
            #expect(reader.join(within: 5), "reader starved")
            if atEntry.value >= atQueue {
                let passed = atEntry.value - atQueue
                #expect(passed <= 2 * writerThreads, "\(passed) writers entered while the reader waited")
            }
        }
    }

    @Test("purge(slot:) clears a dead slot's holds and waiters", arguments: policies)
    func purgeClearsDeadSlot(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 3)
        let coordinator = region.coordinator(policy: policy)
        let dead = 5
        // What slot 5 left behind: two read holds on 0, the write lock on 1, a
        // queued writer (a ticket that will never be used) on 2.
        func scribble(_ mailbox: Int, _ change: (CoordinatorRecord) -> Void) throws {
            let record = coordinator.record(mailbox)
            try coordinator.lock(record)
            change(record)
            record.mutex.unlock()
        }
        try scribble(0) { $0.addReadHold(dead); $0.addReadHold(dead) }
        try scribble(1) { $0.writer = UInt32(dead + 1) }
        try coordinator.withReadAccess(to: 2) {
            try scribble(2) { _ = $0.takeTicket(); $0.addTicketHolder(dead) }
        }
        #expect(try coordinator.stateSnapshot(of: 0).activeReaders == 2)
        #expect(try coordinator.stateSnapshot(of: 1).writer == dead)

        try coordinator.purge(slot: dead)
        try coordinator.purge(slot: dead)  // idempotent
        for mailbox in 0..<3 {
            let state = try coordinator.stateSnapshot(of: mailbox)
            #expect(state.activeReaders == 0 && state.writer == nil && state.queued == 0, "\(state)")
            #expect(state.slots[dead] == .init(readHolds: 0, tickets: 0, blocked: 0))
        }
        // Every slot is reported alive, so only the purge can have freed these.
        for mailbox in 0..<3 {
            let thread = TestThread { _ = try? coordinator.withWriteAccess(to: mailbox) {} }
            #expect(thread.join(within: 0.5), "mailbox \(mailbox) still locked")
        }
    }

    @Test("a dead slot is reclaimed by a waiter", arguments: policies)
    func waiterReclaimsDeadSlot(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: policy, isSlotAlive: { $0 != 9 })
        let record = coordinator.record(0)
        try coordinator.lock(record)
        record.writer = 10  // slot 9 died holding the write lock
        record.mutex.unlock()
        let start = monotonicNanoseconds()
        try coordinator.withReadAccess(to: 0) {}
        #expect(monotonicNanoseconds() - start < 2_000_000_000)
        #expect(try coordinator.stateSnapshot(of: 0).writer == nil)
    }

    @Test("a ticket handed out but held by nobody is voided by a waiter", arguments: policies)
    func orphanedTicketIsVoided(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 1)
        let coordinator = region.coordinator(policy: policy)
        let record = coordinator.record(0)
        try coordinator.lock(record)
        // A thread took a ticket after its server detached, then the process exited:
        // the ticket is counted under no slot and will never be used.
        record.next = record.next &+ 1
        record.mutex.unlock()
        let writer = TestThread { try? coordinator.withWriteAccess(to: 0) {} }
        #expect(writer.join(within: 5), "the queue stays stuck behind the orphaned ticket")
        let reader = TestThread { try? coordinator.withReadAccess(to: 0) {} }
        #expect(reader.join(within: 5))
    }

    @Test("change notification wakes watchers")
    func changeNotification() throws {
        let region = try CoordinatorTestRegion(mailboxes: 2)
        let coordinator = region.coordinator(policy: .fifo)
        let sequence = coordinator.changeSequence(of: 1)
        // Nothing changes: the wait times out.
        let start = monotonicNanoseconds()
        coordinator.waitForChange(of: 1, from: sequence, timeoutNanoseconds: 20_000_000)
        #expect(coordinator.changeSequence(of: 1) == sequence)
        #expect(monotonicNanoseconds() - start < 2_000_000_000)

        let waiting = TestFlag()
        let watcher = TestThread {
            waiting.set()
            while coordinator.changeSequence(of: 1) == sequence {
                coordinator.waitForChange(of: 1, from: sequence, timeoutNanoseconds: 10_000_000_000)
            }
        }
        #expect(waitUntil(5) { waiting.isSet })
        coordinator.notifyChange(of: 0)  // another mailbox: no effect on 1
        #expect(coordinator.changeSequence(of: 1) == sequence)
        coordinator.notifyChange(of: 1)
        #expect(watcher.join(within: 5))
        #expect(coordinator.changeSequence(of: 1) == sequence &+ 1)
    }
}
