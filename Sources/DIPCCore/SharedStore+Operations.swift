/// Mailbox operations (one try each, never waiting), each under the coordinator's lock for that mailbox. None of
/// them touches a socket; callers copy data in before and out after.
extension SharedStore {
    /// The newest message (empty when none) into `buffer`; returns the version.
    public func read(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        try coordinator.withReadAccess(to: mailbox) {
            try backend.readNewest(mailbox, into: &buffer)
        }
    }

    /// The mailbox's version.
    public func version(of mailbox: Int) throws -> UInt64 {
        try coordinator.withReadAccess(to: mailbox) {
            try backend.version(of: mailbox)
        }
    }

    /// Replaces the mailbox's list with one message; returns the new version.
    public func write(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64 {
        let version = try coordinator.withWriteAccess(to: mailbox) {
            try backend.replace(mailbox, with: data)
        }
        coordinator.notifyChange(of: mailbox)
        return version
    }

    /// Appends a message; nil (and no change) when it does not fit now.
    public func push(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64? {
        let version = try coordinator.withWriteAccess(to: mailbox) {
            try backend.append(mailbox, data)
        }
        if version != nil { coordinator.notifyChange(of: mailbox) }
        return version
    }

    /// The mailbox's list: how many messages, how many bytes (changes nothing).
    public func queueState(_ mailbox: Int) throws -> QueueState {
        try coordinator.withReadAccess(to: mailbox) {
            try backend.queueState(mailbox)
        }
    }

    /// Removes the oldest message into `buffer`; nil (and no change) when empty.
    public func take(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? {
        let version = try coordinator.withWriteAccess(to: mailbox) {
            try backend.takeOldest(mailbox, into: &buffer)
        }
        if version != nil { coordinator.notifyChange(of: mailbox) }
        return version
    }

    /// How a wait for a mailbox ended.
    public typealias WaitOutcome<Value> = MailboxWaitOutcome<Value>

    /// Calls `attempt` until it returns a value, the monotonic `deadline` passes, or
    /// `shouldAbandon` returns true. Between attempts it holds no lock and sleeps until
    /// the mailbox changes (in any process sharing the store) or `pollInterval` seconds
    /// pass; `shouldAbandon` is asked before every attempt but the first.
    public func wait<Value>(
        on mailbox: Int, until deadline: Double, pollInterval: Double = 0.1,
        shouldAbandon: () -> Bool, attempt: () throws -> Value?
    ) throws -> WaitOutcome<Value> {
        var retrying = false
        while true {
            let sequence = coordinator.changeSequence(of: mailbox)
            // Ask before every retry, so that a client gone while it slept takes nothing.
            if retrying && shouldAbandon() { return .abandoned }
            if let value = try attempt() { return .done(value) }
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return .timedOut }
            retrying = true
            let slice = min(remaining, pollInterval)
            coordinator.waitForChange(of: mailbox, from: sequence, timeoutNanoseconds: Int64(slice * 1e9))
        }
    }
}

/// The store interface the server uses: the coordinator's locks around the backend,
/// waiting `p`/`c` in the arrival-order lines of `QueueWaiters`.
extension SharedStore: MailboxStore {
    public func describe() -> StoreDescription {
        StoreDescription(name: name, geometry: geometry, coordinator: policy.rawValue, servers: liveServerCount,
                         recordFields: [("slot", String(slot))] + backend.recordFields,
                         queuedRequests: queueWaiters.queued)
    }

    public func push(_ mailbox: Int, _ data: UnsafeRawBufferPointer, waiting wait: MailboxWait) throws -> WaitOutcome<UInt64> {
        // A push behind others gives up at its deadline even when it would fit: arrival
        // order keeps the room for the pushes ahead, which may need more (QUEUES.md).
        try waitForTurn(.producers, mailbox, wait, couldSucceed: { false }, attempt: { try push(mailbox, data) })
    }

    public func take(_ mailbox: Int, into buffer: inout [UInt8], waiting wait: MailboxWait) throws -> WaitOutcome<UInt64> {
        try waitForTurn(.consumers, mailbox, wait, couldSucceed: { try queueState(mailbox).count > 0 },
                        attempt: { try take(mailbox, into: &buffer) })
    }

    public func waitForChange(of mailbox: Int, after version: UInt64, waiting wait: MailboxWait) throws -> WaitOutcome<Void> {
        try self.wait(on: mailbox, until: wait.deadline, shouldAbandon: wait.shouldAbandon) {
            try self.version(of: mailbox) > version ? () : nil
        }
    }

    /// A request that may wait queues in arrival order; one that may not takes (or
    /// pushes) what the mailbox allows now, without a place in line. `couldSucceed`
    /// tells, changing nothing, whether `attempt` would succeed now.
    private func waitForTurn<Value>(_ line: QueueLineKind, _ mailbox: Int, _ wait: MailboxWait,
                                    couldSucceed: () throws -> Bool,
                                    attempt: () throws -> Value?) throws -> WaitOutcome<Value> {
        if wait.waits {
            return try queueWaiters.waitInLine(line, mailbox: mailbox, until: wait.deadline,
                                               shouldAbandon: wait.shouldAbandon, couldSucceed: couldSucceed, attempt: attempt)
        }
        return try self.wait(on: mailbox, until: wait.deadline, shouldAbandon: wait.shouldAbandon, attempt: attempt)
    }
}
