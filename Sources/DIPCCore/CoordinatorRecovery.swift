import Glibc

/// Reclaiming what dead servers left behind. Everything here runs with the record's
/// mutex held and works for both policies (with `fifo`, no reader is ever blocked).
extension Coordinator {
    /// Removes every trace of server `slot` (its held read/write locks, its queued
    /// waiters) from every mailbox. Called by a server attaching to a store, for each
    /// slot whose process is dead, before that slot is reused. Idempotent.
    public func purge(slot dead: Int) throws {
        precondition((0..<Coordinator.maximumServers).contains(dead), "slot \(dead) out of range")
        for mailbox in 0..<mailboxes {
            let record = record(mailbox)
            try lock(record)
            purgeLocked(record, slot: dead)
            QueueWaiters.forget(slot: dead, in: record)
            record.mutex.unlock()
        }
    }

    /// Removes `dead`'s holds and waiters from one record; returns whether it had any.
    /// Voids the outstanding tickets when it had queued waiters (their tickets would
    /// otherwise never be used), and wakes every waiter.
    @discardableResult
    func purgeLocked(_ record: CoordinatorRecord, slot dead: Int) -> Bool {
        guard record.slotHasState(dead) else { return false }
        let hadTickets = record.tickets(dead) != 0
        let heldWrite = record.writer == UInt32(dead + 1)
        record.setReadHolds(dead, 0)
        record.setTickets(dead, 0)
        record.setBlocked(dead, 0)
        if heldWrite { record.writer = 0 }
        record.recomputeAggregates()
        if hadTickets { record.voidTickets() }
        // Phase-fair: a dead writer's release, or the last queued writer gone,
        // admits the blocked readers.
        if record.writer == 0 && record.blockedReaders > 0 && (heldWrite || record.ticketHolders == 0) {
            record.admitBlockedReaders()
        }
        record.bumpWake()
        Futex.wakeAll(record.wakePointer)
        return true
    }

    /// The previous mutex holder died mid-update: rebuild the aggregates from the
    /// per-slot counts, purge dead slots, void tickets (the dead holder may have taken
    /// one without recording it), and let blocked readers in if no writer holds
    /// (it may have died halfway through admitting them).
    func repairAfterOwnerDeath(_ record: CoordinatorRecord) {
        record.recomputeAggregates()
        for other in 0..<Coordinator.maximumServers where other != slot && record.slotHasState(other) {
            if !isSlotAlive(other) { purgeLocked(record, slot: other) }
        }
        record.voidTickets()
        if record.writer == 0 && record.blockedReaders > 0 { record.admitBlockedReaders() }
        record.bumpWake()
        Futex.wakeAll(record.wakePointer)
    }

    /// Run by a waiter every liveness interval: purges the slots with state on this
    /// record whose process is dead.
    func reclaimDeadSlots(_ record: CoordinatorRecord) {
        for other in 0..<Coordinator.maximumServers where other != slot && record.slotHasState(other) {
            if !isSlotAlive(other) { purgeLocked(record, slot: other) }
        }
        // Self-healing: tickets handed out but held by nobody (a thread that took one
        // after its own server detached) would stall the queue forever.
        if record.next &- record.serving > record.ticketHolders {
            record.voidTickets()
            record.bumpWake()
            Futex.wakeAll(record.wakePointer)
        }
        // Self-healing: blocked readers with no writer present would wait forever.
        if record.writer == 0 && record.ticketHolders == 0 && record.blockedReaders > 0 {
            record.admitBlockedReaders()
            record.bumpWake()
            Futex.wakeAll(record.wakePointer)
        }
    }

    /// A consistent view of one mailbox's lock state, for tests and diagnostics.
    struct StateSnapshot: Equatable, CustomStringConvertible {
        var activeReaders: Int
        /// Slot holding the write lock.
        var writer: Int?
        var ticketHolders: Int
        var blockedReaders: Int
        var epoch: UInt32
        /// Per slot: (read holds, ticket holders, blocked readers).
        var slots: [SlotState]

        struct SlotState: Equatable {
            var readHolds: Int
            var tickets: Int
            var blocked: Int
        }

        /// Threads queued (waiting with a ticket or blocked).
        var queued: Int { ticketHolders + blockedReaders }

        var description: String {
            "readers \(activeReaders) writer \(writer.map(String.init) ?? "-") tickets \(ticketHolders) blocked \(blockedReaders) epoch \(epoch)"
        }
    }

    func stateSnapshot(of mailbox: Int) throws -> StateSnapshot {
        let record = record(mailbox)
        try lock(record)
        defer { record.mutex.unlock() }
        let writer = record.writer
        return StateSnapshot(
            activeReaders: Int(record.activeReaders),
            writer: writer == 0 ? nil : Int(writer) - 1,
            ticketHolders: Int(record.ticketHolders),
            blockedReaders: Int(record.blockedReaders),
            epoch: record.epoch,
            slots: (0..<Coordinator.maximumServers).map {
                StateSnapshot.SlotState(
                    readHolds: Int(record.readHolds($0)), tickets: Int(record.tickets($0)),
                    blocked: Int(record.blocked($0)))
            })
    }
}
