import Glibc

/// One server's handle on a named store: the backend, wrapped by the store header
/// (identity, geometry, attached servers) and the `Coordinator` (per-mailbox
/// readers-writer locks in shared memory).
///
/// Lifecycle: `open` creates the store or attaches to it and claims a server slot;
/// `detach` gives the slot back and removes the store when no other live server is
/// attached. Every mailbox operation goes through the coordinator, so the
/// guarantees hold across threads and across server processes alike.
public final class SharedStore: @unchecked Sendable {
    public let name: String
    public let geometry: StoreGeometry
    public let policy: CoordinatorPolicy
    public let backend: BlockBackend
    public let coordinator: Coordinator
    /// Arrival-order lines for waiting `c` and `p` requests.
    public let queueWaiters: QueueWaiters
    /// This server's slot in the store header.
    public let slot: Int
    private let header: StoreHeader

    /// Opens the store with `openBackend` (which creates or attaches the backend's
    /// objects), formats it when this process created it, else checks that it is a
    /// store named `name` with this geometry and policy, and claims a server slot.
    ///
    /// Throws `StoreError` (mismatch, corrupt, too many servers, not ready) or the
    /// backend's `SystemError`. On failure nothing this call created is left behind.
    public static func open(
        name: String, geometry: StoreGeometry, policy: CoordinatorPolicy,
        identity: ProcessIdentity = .current(),
        deadlineSeconds: Double = 5,
        openBackend: () throws -> BlockBackend
    ) throws -> SharedStore {
        let deadline = monotonicSeconds() + deadlineSeconds
        while true {
            let backend = try openBackend()
            let outcome: AttachOutcome
            do {
                outcome = try attach(backend: backend, name: name, geometry: geometry, policy: policy, identity: identity)
            } catch {
                try? backend.close(removing: backend.createdControl)
                throw error
            }
            switch outcome {
            case let .attached(store):
                return store
            case .beingRemoved:
                // Its last server is removing it right now: open it again.
                try? backend.close(removing: false)
            case .abandoned:
                // Its creator or its remover died halfway: the store holds nothing of value.
                try? backend.close(removing: true)
            }
            guard monotonicSeconds() < deadline else { throw StoreError.notReady(name: name) }
            usleep(10_000)
        }
    }

    private enum AttachOutcome {
        case attached(SharedStore)
        /// The store is being removed by a live server.
        case beingRemoved
        /// The store's creator died while formatting it, or its remover died while
        /// removing it: remove it and start over.
        case abandoned
    }

    /// Formats or validates, then claims a slot.
    private static func attach(
        backend: BlockBackend, name: String, geometry: StoreGeometry, policy: CoordinatorPolicy,
        identity: ProcessIdentity
    ) throws -> AttachOutcome {
        let header = StoreHeader(at: backend.control)
        let region = backend.control + StoreLayout.headerSize
        if backend.createdControl {
            try header.format(name: name, geometry: geometry, policy: policy)
            try Coordinator.initializeRegion(region, mailboxes: geometry.mailboxes)
            header.setState(.ready)
            backend.creationFinished()
        } else {
            // A creator formatting a large store may take long: wait while it lives.
            while header.state == .formatting {
                if !backend.creatorIsAlive && header.state == .formatting { return .abandoned }
                usleep(2_000)
            }
            if header.state == .removed { return liveServerCount(header) > 0 ? .beingRemoved : .abandoned }
            try header.validate(name: name, geometry: geometry, policy: policy)
        }
        let coordinatorFor: (Int) -> Coordinator = { slot in
            Coordinator(region: region, mailboxes: geometry.mailboxes, policy: policy, slot: slot,
                        isSlotAlive: { [header] in header.isSlotAlive($0) })
        }
        let mutex = header.attachMutex
        // The state it protects (slots) is repaired below either way.
        if try mutex.lock() == .ownerDied { mutex.markConsistent() }
        defer { mutex.unlock() }
        if header.state == .removed { return liveServerCount(header) > 0 ? .beingRemoved : .abandoned }
        // Forget servers that died without detaching, so their locks and slots are free.
        let janitor = coordinatorFor(0)
        var free: Int?
        for slot in 0..<Coordinator.maximumServers {
            if header.occupant(of: slot) != nil, !header.isSlotAlive(slot) {
                try janitor.purge(slot: slot)
                header.release(slot: slot)
            }
            if free == nil, header.occupant(of: slot) == nil { free = slot }
        }
        // Nobody alive uses the store: start from a clean coordinator state.
        if liveServerCount(header) == 0 { try Coordinator.resetRegion(region, mailboxes: geometry.mailboxes) }
        guard let slot = free else {
            throw StoreError.tooManyServers(name: name, limit: Coordinator.maximumServers)
        }
        header.claim(slot: slot, for: identity)
        return .attached(SharedStore(name: name, geometry: geometry, policy: policy, backend: backend,
                                     coordinator: coordinatorFor(slot), slot: slot, header: header))
    }

    private static func liveServerCount(_ header: StoreHeader) -> Int {
        (0..<Coordinator.maximumServers).filter { header.isSlotAlive($0) }.count
    }

    private init(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy, backend: BlockBackend,
                 coordinator: Coordinator, slot: Int, header: StoreHeader) {
        self.name = name
        self.geometry = geometry
        self.policy = policy
        self.backend = backend
        self.coordinator = coordinator
        self.queueWaiters = QueueWaiters(coordinator: coordinator)
        self.slot = slot
        self.header = header
    }

    /// Gives this server's slot back and closes the backend, removing the store's
    /// shared objects when no other live server is attached. Returns whether it removed them.
    @discardableResult
    public func detach() throws -> Bool {
        let last = try SharedStore.releaseSlot(slot, header: header, coordinator: coordinator)
        try backend.close(removing: last)
        return last
    }

    /// Frees `slot` (purging its locks) and, when no other live server remains,
    /// marks the store removed. Returns whether the store should now be destroyed.
    private static func releaseSlot(_ slot: Int, header: StoreHeader, coordinator: Coordinator) throws -> Bool {
        let mutex = header.attachMutex
        if try mutex.lock() == .ownerDied { mutex.markConsistent() }  // slots are checked one by one below
        defer { mutex.unlock() }
        try coordinator.purge(slot: slot)
        let othersAlive = (0..<Coordinator.maximumServers).contains { $0 != slot && header.isSlotAlive($0) }
        if othersAlive {
            header.release(slot: slot)
        } else {
            // The remover keeps its slot: while it lives, openers see a store being
            // removed (and wait), not an abandoned one (which they would remove themselves).
            header.setState(.removed)
        }
        return !othersAlive
    }

    /// Cleans up after a server that died without detaching (its slot, if it had claimed
    /// one, is `slot`): frees the slots and locks of every dead server, and destroys the
    /// store when no live server remains attached — or when it was left half made or
    /// half removed. `backend` is an attach-only open of that store. Returns whether the
    /// store was destroyed.
    public static func cleanUpAfterCrash(backend: BlockBackend, name: String, geometry: StoreGeometry,
                                         policy: CoordinatorPolicy, slot: Int?) throws -> Bool {
        let header = StoreHeader(at: backend.control)
        if backend.createdControl
            || (header.state == .formatting && !backend.creatorIsAlive)
            || (header.state == .removed && liveServerCount(header) == 0) {
            // Made just now, or left halfway by a dead creator or remover: nothing of value.
            try backend.close(removing: true)
            return true
        }
        guard header.state == .ready, (try? header.validate(name: name, geometry: geometry, policy: policy)) != nil else {
            // Not a store we understand, or one still being made or removed by a live server.
            try backend.close(removing: false)
            return false
        }
        let region = backend.control + StoreLayout.headerSize
        let janitor = Coordinator(region: region, mailboxes: geometry.mailboxes, policy: policy, slot: slot ?? 0,
                                  isSlotAlive: { [header] in header.isSlotAlive($0) })
        let mutex = header.attachMutex
        if try mutex.lock() == .ownerDied { mutex.markConsistent() }  // slots are checked one by one below
        var last = false
        do {
            defer { mutex.unlock() }
            for dead in 0..<Coordinator.maximumServers where header.occupant(of: dead) != nil && !header.isSlotAlive(dead) {
                try janitor.purge(slot: dead)
                header.release(slot: dead)
            }
            last = liveServerCount(header) == 0
            if last { header.setState(.removed) }
        }
        try backend.close(removing: last)
        return last
    }

    /// Number of live servers attached to the store, this one included.
    public var liveServerCount: Int { SharedStore.liveServerCount(header) }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
