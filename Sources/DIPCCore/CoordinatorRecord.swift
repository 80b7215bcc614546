import Atomics

/// The shared state of one mailbox's readers-writer lock: a view over
/// `CoordinatorRecord.stride` bytes of the coordinator region.
///
/// Layout: `CoordinatorRecordLayout` (the one table of every field of the record,
/// including the `QueueWaiters` lines in bytes 136..<192, which this type only zeroes
/// in `formatState`). The offsets below are names for entries of that table.
///
/// The per-slot counts are the truth; the aggregates are caches that can be
/// recomputed from them after a holder of the mutex died mid-update. All words are
/// accessed through atomics (relaxed under the mutex), so there are no data races
/// even between processes.
package struct CoordinatorRecord {
    private typealias Field = CoordinatorRecordLayout.Field
    private typealias Slot = CoordinatorRecordLayout.Slot

    static let stride = CoordinatorRecordLayout.size

    static let mutexOffset = Field.mutex.offset
    static let wakeOffset = Field.wake.offset
    static let epochOffset = Field.epoch.offset
    static let nextOffset = Field.next.offset
    static let servingOffset = Field.serving.offset
    static let writerOffset = Field.writer.offset
    static let activeReadersOffset = Field.activeReaders.offset
    static let ticketHoldersOffset = Field.ticketHolders.offset
    static let blockedReadersOffset = Field.blockedReaders.offset
    static let phaseOffset = Field.phase.offset
    static let changeOffset = Field.change.offset
    static let changeWatchersOffset = Field.changeWatchers.offset
    static let slotsOffset = Field.slots.offset
    static let slotStride = Slot.stride
    static let slotReadHolds = Slot.readHolds.offset
    static let slotTickets = Slot.tickets.offset
    static let slotBlocked = Slot.blocked.offset

    let base: UnsafeMutableRawPointer

    init(base: UnsafeMutableRawPointer) {
        self.base = base
    }

    package var mutex: RobustMutex { RobustMutex(at: base + Self.mutexOffset) }

    /// Zeroes the record's state (not the mutex, which `RobustMutex.initialize` sets up).
    func formatState() {
        (base + Self.wakeOffset).initializeMemory(as: UInt8.self, repeating: 0, count: Self.stride - Self.wakeOffset)
    }

    // MARK: Raw words

    @inline(__always)
    func atomic(_ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic<UInt32>(at: (base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    @inline(__always)
    private func load(_ offset: Int) -> UInt32 { atomic(offset).load(ordering: .relaxed) }

    @inline(__always)
    private func store(_ offset: Int, _ value: UInt32) { atomic(offset).store(value, ordering: .relaxed) }

    /// The futex word lock waiters sleep on.
    var wakePointer: UnsafeMutablePointer<UInt32> {
        (base + Self.wakeOffset).assumingMemoryBound(to: UInt32.self)
    }

    /// The futex word change watchers sleep on.
    var changePointer: UnsafeMutablePointer<UInt32> {
        (base + Self.changeOffset).assumingMemoryBound(to: UInt32.self)
    }

    // MARK: Fields guarded by the mutex

    var wake: UInt32 { load(Self.wakeOffset) }
    func bumpWake() { store(Self.wakeOffset, load(Self.wakeOffset) &+ 1) }

    var epoch: UInt32 {
        get { load(Self.epochOffset) }
        nonmutating set { store(Self.epochOffset, newValue) }
    }
    var next: UInt32 {
        get { load(Self.nextOffset) }
        nonmutating set { store(Self.nextOffset, newValue) }
    }
    var serving: UInt32 {
        get { load(Self.servingOffset) }
        nonmutating set { store(Self.servingOffset, newValue) }
    }
    /// Slot + 1 of the writer, or 0.
    var writer: UInt32 {
        get { load(Self.writerOffset) }
        nonmutating set { store(Self.writerOffset, newValue) }
    }
    package var activeReaders: UInt32 {
        get { load(Self.activeReadersOffset) }
        nonmutating set { store(Self.activeReadersOffset, newValue) }
    }
    package var ticketHolders: UInt32 {
        get { load(Self.ticketHoldersOffset) }
        nonmutating set { store(Self.ticketHoldersOffset, newValue) }
    }
    var blockedReaders: UInt32 {
        get { load(Self.blockedReadersOffset) }
        nonmutating set { store(Self.blockedReadersOffset, newValue) }
    }
    var phase: UInt32 {
        get { load(Self.phaseOffset) }
        nonmutating set { store(Self.phaseOffset, newValue) }
    }

    /// Hands out the next ticket.
    package func takeTicket() -> UInt32 {
        let ticket = next
        next = ticket &+ 1
        return ticket
    }

    // MARK: Per-slot counts

    private func slotOffset(_ slot: Int, _ field: Int) -> Int {
        Self.slotsOffset + slot * Self.slotStride + field
    }

    func readHolds(_ slot: Int) -> UInt32 { load(slotOffset(slot, Self.slotReadHolds)) }
    func setReadHolds(_ slot: Int, _ value: UInt32) { store(slotOffset(slot, Self.slotReadHolds), value) }
    func tickets(_ slot: Int) -> UInt32 { load(slotOffset(slot, Self.slotTickets)) }
    package func setTickets(_ slot: Int, _ value: UInt32) { store(slotOffset(slot, Self.slotTickets), value) }
    func blocked(_ slot: Int) -> UInt32 { load(slotOffset(slot, Self.slotBlocked)) }
    func setBlocked(_ slot: Int, _ value: UInt32) { store(slotOffset(slot, Self.slotBlocked), value) }

    /// Per-slot count and its aggregate, updated together (slot first: repair
    /// recomputes the aggregate from the slots).
    func addReadHold(_ slot: Int) {
        setReadHolds(slot, readHolds(slot) &+ 1)
        activeReaders = activeReaders &+ 1
    }

    /// Drops one read hold of `slot`; false when it had none (purged meanwhile).
    func removeReadHold(_ slot: Int) -> Bool {
        let held = readHolds(slot)
        guard held > 0 else { return false }
        setReadHolds(slot, held - 1)
        let active = activeReaders
        activeReaders = active > 0 ? active - 1 : 0
        return true
    }

    func addTicketHolder(_ slot: Int) {
        setTickets(slot, tickets(slot) &+ 1)
        ticketHolders = ticketHolders &+ 1
    }

    func removeTicketHolder(_ slot: Int) {
        // After a purge of this slot its tickets are already gone from both counts.
        let held = tickets(slot)
        guard held > 0 else { return }
        setTickets(slot, held - 1)
        let all = ticketHolders
        ticketHolders = all > 0 ? all - 1 : 0
    }

    func addBlockedReader(_ slot: Int) {
        setBlocked(slot, blocked(slot) &+ 1)
        blockedReaders = blockedReaders &+ 1
    }

    /// Whether `slot` holds, waits for or is queued on this lock.
    func slotHasState(_ slot: Int) -> Bool {
        readHolds(slot) != 0 || tickets(slot) != 0 || blocked(slot) != 0 || writer == UInt32(slot + 1)
    }

    /// Recomputes every aggregate from the per-slot counts.
    func recomputeAggregates() {
        var readers: UInt32 = 0
        var holders: UInt32 = 0
        var blockedCount: UInt32 = 0
        for slot in 0..<Coordinator.maximumServers {
            readers &+= readHolds(slot)
            holders &+= tickets(slot)
            blockedCount &+= blocked(slot)
        }
        activeReaders = readers
        ticketHolders = holders
        blockedReaders = blockedCount
        if writer > UInt32(Coordinator.maximumServers) { writer = 0 }
    }

    /// Voids every outstanding ticket: waiters that see the epoch change take a new one.
    func voidTickets() {
        serving = next
        epoch = epoch &+ 1
    }

    /// Phase-fair: admits every blocked reader at once (moves them into the read
    /// holds, then opens the next phase so that they return).
    func admitBlockedReaders() {
        for slot in 0..<Coordinator.maximumServers {
            let count = blocked(slot)
            if count > 0 {
                setReadHolds(slot, readHolds(slot) &+ count)
                setBlocked(slot, 0)
            }
        }
        recomputeAggregates()
        phase = phase &+ 1
    }

    // MARK: Change notification (lock-free)

    var changeSequence: UInt32 { atomic(Self.changeOffset).load(ordering: .acquiring) }
}
