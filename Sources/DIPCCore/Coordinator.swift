import Atomics
import Glibc

/// The readers-writer coordinator that wraps every backend.
///
/// All state lives in a shared region (`regionSize(mailboxes:)` bytes, 64-byte
/// aligned, formatted once by `initializeRegion`), so every thread of every server
/// process that maps the region shares the same locks. Per mailbox, a robust
/// process-shared mutex guards a small record (`CoordinatorRecord`); waiters sleep
/// on a futex word of that record.
///
/// - `fifo` (task-fair): tickets; accesses enter in arrival order, consecutive
///   readers together.
/// - `phaseFair` (Brandenburg and Anderson): writers queue on tickets; readers that
///   arrive while a writer waits or holds are blocked, and the writer that releases
///   admits all of them at once, before the next writer.
///
/// Crash safety: holds and waiters are recorded per server slot. A waiter checks
/// every `livenessInterval` whether a slot with state on its mailbox belongs to a
/// dead process and then purges it; a mutex whose holder died is repaired from the
/// per-slot counts. Purging a slot that had queued waiters voids all outstanding
/// tickets (the epoch changes and live waiters take new ones).
///
/// Locks are meant to be held briefly (a memcpy), never across I/O.
public final class Coordinator: @unchecked Sendable {
    /// Max servers attached to one store at once (slots 0..<32).
    public static let maximumServers = 32

    /// How often a waiter checks the liveness of the slots on its mailbox.
    static let livenessInterval: Int64 = 100_000_000

    /// Bytes of shared region needed for `mailboxes` mailboxes (64-byte multiple).
    public static func regionSize(mailboxes: Int) -> Int {
        precondition(mailboxes >= 0, "negative mailbox count")
        return mailboxes * CoordinatorRecord.stride
    }

    /// Formats a new region (zeroed memory from the creator, before anyone else uses
    /// it): initialises every mailbox's robust mutex and state.
    public static func initializeRegion(_ region: UnsafeMutableRawPointer, mailboxes: Int) throws {
        precondition(Int(bitPattern: region) % 64 == 0, "coordinator region must be 64-byte aligned")
        for mailbox in 0..<mailboxes {
            let record = CoordinatorRecord(base: region + mailbox * CoordinatorRecord.stride)
            record.formatState()
            try record.mutex.initialize()
        }
    }

    /// Formats the region of a store that no live server uses any more (called by the
    /// first server attaching to it, under the store's attach mutex): whatever dead
    /// servers left (holds, queues, a mutex held by a dead thread, counts a crash left
    /// half updated) is dropped. The change counters are kept, so they never go back.
    public static func resetRegion(_ region: UnsafeMutableRawPointer, mailboxes: Int) throws {
        precondition(Int(bitPattern: region) % 64 == 0, "coordinator region must be 64-byte aligned")
        for mailbox in 0..<mailboxes {
            let record = CoordinatorRecord(base: region + mailbox * CoordinatorRecord.stride)
            let change = record.changeSequence
            record.formatState()
            record.atomic(CoordinatorRecord.changeOffset).store(change, ordering: .relaxed)
            try record.mutex.initialize()
        }
    }

    let region: UnsafeMutableRawPointer
    let mailboxes: Int
    let policy: CoordinatorPolicy
    let slot: Int
    let isSlotAlive: @Sendable (Int) -> Bool
    /// `slot + 1`, the value of `writer` while this server holds a write lock.
    let writerTag: UInt32
    /// Test-only pauses (debug builds, `DIPC_TEST_HOLD`).
    let holdPoints = HoldPoints()

    /// `slot`: this server's slot (0..<32) in the store; `isSlotAlive(s)`: whether the
    /// server in slot s is a live process (the store header answers it; may be
    /// called often but cheaply).
    public init(
        region: UnsafeMutableRawPointer, mailboxes: Int, policy: CoordinatorPolicy, slot: Int,
        isSlotAlive: @escaping @Sendable (Int) -> Bool
    ) {
        precondition(Int(bitPattern: region) % 64 == 0, "coordinator region must be 64-byte aligned")
        precondition(mailboxes >= 0, "negative mailbox count")
        precondition((0..<Coordinator.maximumServers).contains(slot), "slot \(slot) out of range")
        self.region = region
        self.mailboxes = mailboxes
        self.policy = policy
        self.slot = slot
        self.isSlotAlive = isSlotAlive
        self.writerTag = UInt32(slot + 1)
    }

    package func record(_ mailbox: Int) -> CoordinatorRecord {
        precondition(mailbox >= 0 && mailbox < mailboxes, "mailbox \(mailbox) out of range 0..<\(mailboxes)")
        return CoordinatorRecord(base: region + mailbox * CoordinatorRecord.stride)
    }

    // MARK: Access

    /// Runs body holding mailbox's read lock (shared with other readers).
    public func withReadAccess<T>(to mailbox: Int, _ body: () throws -> T) throws -> T {
        let record = record(mailbox)
        switch policy {
        case .fifo: try fifoAcquire(record, exclusive: false)
        case .phaseFair: try phaseFairAcquireRead(record)
        }
        defer { release(record, exclusive: false) }
        holdPoints.reach(.readLock, mailbox: mailbox)
        return try body()
    }

    /// Runs body holding mailbox's write lock (excludes everybody).
    public func withWriteAccess<T>(to mailbox: Int, _ body: () throws -> T) throws -> T {
        let record = record(mailbox)
        switch policy {
        case .fifo: try fifoAcquire(record, exclusive: true)
        case .phaseFair: try phaseFairAcquireWrite(record)
        }
        defer { release(record, exclusive: true) }
        holdPoints.reach(.writeLock, mailbox: mailbox)
        return try body()
    }

    /// Releases a read or write lock (both policies).
    func release(_ record: CoordinatorRecord, exclusive: Bool) {
        // Only an unrecoverable mutex fails here; nothing more can be done then.
        guard (try? lock(record)) != nil else { return }
        let wake: Bool
        if exclusive {
            if record.writer == writerTag { record.writer = 0 }
            wake = record.ticketHolders > 0 || record.blockedReaders > 0
            // Phase-fair: the releasing writer admits every reader blocked during it,
            // so that the next writer cannot slip in first. (Always 0 with fifo.)
            if record.blockedReaders > 0 { record.admitBlockedReaders() }
        } else {
            _ = record.removeReadHold(slot)
            // Only a drained reader phase lets a waiter progress.
            wake = record.activeReaders == 0 && (record.ticketHolders > 0 || record.blockedReaders > 0)
        }
        if wake { record.bumpWake() }
        record.mutex.unlock()
        if wake { Futex.wakeAll(record.wakePointer) }
    }

    // MARK: Mutex and waiting

    /// Locks the record's mutex, repairing the state when its previous holder died.
    func lock(_ record: CoordinatorRecord) throws {
        switch try record.mutex.lock() {
        case .acquired:
            return
        case .ownerDied:
            repairAfterOwnerDeath(record)
            record.mutex.markConsistent()
        }
    }

    /// With the mutex held: releases it, sleeps until the wake word changes (or the
    /// liveness interval passes), relocks, and every `livenessInterval` purges the
    /// dead slots that hold or wait on this mailbox.
    func sleep(_ record: CoordinatorRecord, lastCheck: inout Int64) throws {
        let observed = record.wake
        record.mutex.unlock()
        holdPoints.reach(.waiting, mailbox: (record.base - region) / CoordinatorRecord.stride)
        Futex.wait(record.wakePointer, expected: observed, timeoutNanoseconds: Coordinator.livenessInterval)
        try lock(record)
        let now = monotonicNanoseconds()
        if now - lastCheck >= Coordinator.livenessInterval {
            lastCheck = now
            reclaimDeadSlots(record)
        }
    }

    // MARK: Change notification

    /// Change notification for watchers (r N VERSION WAIT, blocked p/c): a 32-bit
    /// counter per mailbox.
    public func changeSequence(of mailbox: Int) -> UInt32 {
        record(mailbox).changeSequence
    }

    /// Bumps the mailbox's change counter and wakes every waiter in every process.
    /// Called by a writer after it changed the mailbox (while or after holding the
    /// write lock).
    public func notifyChange(of mailbox: Int) {
        let record = record(mailbox)
        record.atomic(CoordinatorRecord.changeOffset).wrappingIncrement(ordering: .sequentiallyConsistent)
        // Skip the syscall when nobody announced a wait since the last wake. A watcher
        // sets the flag before checking the counter, so it either sees the new value
        // or is woken here.
        if record.atomic(CoordinatorRecord.changeWatchersOffset).exchange(0, ordering: .sequentiallyConsistent) != 0 {
            Futex.wakeAll(record.changePointer)
        }
    }

    /// Blocks until the change counter differs from `sequence` or the timeout passes
    /// (spurious returns allowed; callers recheck). A negative timeout waits without limit.
    public func waitForChange(of mailbox: Int, from sequence: UInt32, timeoutNanoseconds: Int64) {
        let record = record(mailbox)
        record.atomic(CoordinatorRecord.changeWatchersOffset).store(1, ordering: .sequentiallyConsistent)
        guard record.atomic(CoordinatorRecord.changeOffset).load(ordering: .sequentiallyConsistent) == sequence else {
            return
        }
        Futex.wait(record.changePointer, expected: sequence, timeoutNanoseconds: timeoutNanoseconds)
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
func monotonicNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}
