import Glibc
import Synchronization
import Testing

@testable import DIPCCore
@testable import dipc_lockprobe

/// The coordinator across two processes: the `dipc-lockprobe` executable maps the
/// same POSIX shm region in slot 1 while the test process uses slot 0.
extension CoordinatorTests {
    static let probeSlot = 1

    /// A named region, the test's coordinator (slot 0) whose liveness view of slot 1
    /// follows `probe`, and the probe itself.
    struct Setup {
        let region: CoordinatorTestRegion
        let coordinator: Coordinator
        let probe: LockProbe

        init(policy: CoordinatorPolicy, mode: String) throws {
            region = try CoordinatorTestRegion(mailboxes: 2, named: true)
            probe = try LockProbe(region: region, policy: policy, slot: CoordinatorTests.probeSlot, mailbox: 1, mode: mode)
            let probe = probe
            coordinator = region.coordinator(policy: policy, slot: 0) { slot in
                slot == 0 || (slot == CoordinatorTests.probeSlot && !probe.isReaped)
            }
        }

        var state: Coordinator.StateSnapshot {
            get throws { try coordinator.stateSnapshot(of: 1) }
        }

        /// Waits until `count` threads are queued on mailbox 1.
        func waitQueued(_ count: Int) -> Bool {
            waitUntil(5) { ((try? state.queued) ?? -1) == count }
        }
    }

    @Test("another process's write lock blocks a reader until released", arguments: policies)
    func crossProcessWriteBlocksReader(policy: CoordinatorPolicy) throws {
        let setup = try Setup(policy: policy, mode: "write")
        try #require(setup.probe.readLine() == "locked", "the probe never took its lock")
        #expect(try setup.state.writer == CoordinatorTests.probeSlot)
        let entered = TestFlag()
        let coordinator = setup.coordinator
        let reader = TestThread { try? coordinator.withReadAccess(to: 1) { entered.set() } }
        #expect(setup.waitQueued(1))
        #expect(!entered.isSet)
        setup.probe.proceed()
        #expect(reader.join(within: 5))
        #expect(entered.isSet)
        #expect(setup.probe.readLine() == "released")
        #expect(setup.probe.reap() == 0)
        let state = try setup.state
        #expect(state.activeReaders == 0 && state.writer == nil && state.queued == 0, "\(state)")
    }

    @Test("exclusion holds across processes under contention", arguments: policies)
    func crossProcessContention(policy: CoordinatorPolicy) throws {
        let region = try CoordinatorTestRegion(mailboxes: 2, named: true, extraBytes: StressCounters.size)
        let counters = StressCounters(at: region.extra)
        let probe = try LockProbe(region: region, policy: policy, slot: CoordinatorTests.probeSlot, mailbox: 1, mode: "stress")
        let coordinator = region.coordinator(policy: policy, slot: 0)
        StressCounters.hammer(coordinator, mailbox: 1, counters: counters, threads: 4, operations: 3000)
        #expect(probe.readLine(within: 30) == "done")
        #expect(probe.reap() == 0)
        #expect(counters.violations == 0)
        #expect(counters.writes == 2 * 4 * 3000 / 4)
        let state = try coordinator.stateSnapshot(of: 1)
        #expect(state.activeReaders == 0 && state.writer == nil && state.queued == 0, "\(state)")
    }

    @Test("a process killed holding the write lock does not wedge readers", arguments: policies)
    func killedHoldingWrite(policy: CoordinatorPolicy) throws {
        let setup = try Setup(policy: policy, mode: "write")
        try #require(setup.probe.readLine() == "locked", "the probe never took its lock")
        let entered = TestFlag()
        let coordinator = setup.coordinator
        let reader = TestThread { try? coordinator.withReadAccess(to: 1) { entered.set() } }
        #expect(setup.waitQueued(1))
        setup.probe.killHard()
        #expect(reader.join(within: 3), "reader wedged behind a dead writer")
        #expect(entered.isSet)
        let state = try setup.state
        #expect(state.writer == nil && state.activeReaders == 0 && state.queued == 0, "\(state)")
        #expect(state.slots[CoordinatorTests.probeSlot] == .init(readHolds: 0, tickets: 0, blocked: 0))
    }

    @Test("a process killed holding a read lock does not wedge a waiting writer", arguments: policies)
    func killedHoldingRead(policy: CoordinatorPolicy) throws {
        let setup = try Setup(policy: policy, mode: "read")
        try #require(setup.probe.readLine() == "locked", "the probe never took its lock")
        #expect(try setup.state.activeReaders == 1)
        let entered = TestFlag()
        let coordinator = setup.coordinator
        let writer = TestThread { try? coordinator.withWriteAccess(to: 1) { entered.set() } }
        #expect(setup.waitQueued(1))
        #expect(!entered.isSet)
        setup.probe.killHard()
        #expect(writer.join(within: 3), "writer wedged behind a dead reader")
        #expect(entered.isSet)
        let state = try setup.state
        #expect(state.writer == nil && state.activeReaders == 0 && state.queued == 0, "\(state)")
    }

    @Test(
        "a process killed while queued does not wedge the queue",
        arguments: [CoordinatorPolicy.fifo, .phaseFair], ["read", "write"])
    func killedWhileQueued(policy: CoordinatorPolicy, probeMode: String) throws {
        let region = try CoordinatorTestRegion(mailboxes: 2, named: true)
        let probeBox = ProbeBox()
        let coordinator = region.coordinator(policy: policy, slot: 0) { slot in
            slot == 0 || (slot == CoordinatorTests.probeSlot && !(probeBox.probe?.isReaped ?? true))
        }
        var later: [TestThread] = []
        let entries = TestCounter()
        try coordinator.withWriteAccess(to: 1) {
            let probe = try LockProbe(
                region: region, policy: policy, slot: CoordinatorTests.probeSlot, mailbox: 1, mode: probeMode)
            probeBox.probe = probe
            // The probe waits behind our write lock, holding a ticket (or blocked).
            #expect(waitUntil(5) { ((try? coordinator.stateSnapshot(of: 1).queued) ?? -1) == 1 })
            // Others queue behind it, then it dies.
            later.append(TestThread { try? coordinator.withWriteAccess(to: 1) { entries.add() } })
            #expect(waitUntil(5) { ((try? coordinator.stateSnapshot(of: 1).queued) ?? -1) == 2 })
            later.append(TestThread { try? coordinator.withReadAccess(to: 1) { entries.add() } })
            #expect(waitUntil(5) { ((try? coordinator.stateSnapshot(of: 1).queued) ?? -1) == 3 })
            probe.killHard()
        }
        for thread in later { #expect(thread.join(within: 3), "queue wedged behind a dead waiter") }
        #expect(entries.value == 2)
        // A fresh access gets in at once.
        let fresh = TestThread { try? coordinator.withWriteAccess(to: 1) { entries.add() } }
        #expect(fresh.join(within: 3))
        let state = try coordinator.stateSnapshot(of: 1)
        #expect(state.writer == nil && state.activeReaders == 0 && state.queued == 0, "\(state)")
        #expect(state.slots[CoordinatorTests.probeSlot] == .init(readHolds: 0, tickets: 0, blocked: 0))
    }

    @Test("a process killed inside the mutex mid-update is repaired", arguments: policies)
    func killedInsideMutex(policy: CoordinatorPolicy) throws {
        let setup = try Setup(policy: policy, mode: "mutex")
        try #require(setup.probe.readLine() == "locked", "the probe never took its lock")
        setup.probe.killHard()
        // The next locker gets EOWNERDEAD, rebuilds the state and purges the dead slot.
        let coordinator = setup.coordinator
        let entries = TestCounter()
        let threads = [
            TestThread { try? coordinator.withWriteAccess(to: 1) { entries.add() } },
            TestThread { try? coordinator.withReadAccess(to: 1) { entries.add() } },
            TestThread { try? coordinator.withWriteAccess(to: 1) { entries.add() } },
        ]
        for thread in threads { #expect(thread.join(within: 3), "mailbox wedged after a death inside the mutex") }
        #expect(entries.value == 3)
        let state = try setup.state
        #expect(state.writer == nil && state.activeReaders == 0 && state.queued == 0, "\(state)")
        // The other mailbox was never touched.
        #expect(try coordinator.withWriteAccess(to: 0) { true })
    }
}

/// Lets a liveness closure see a probe started later.
final class ProbeBox: Sendable {
    private let stored = Mutex<LockProbe?>(nil)
    var probe: LockProbe? {
        get { stored.withLock { $0 } }
        set { stored.withLock { $0 = newValue } }
    }
}
