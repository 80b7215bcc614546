import DIPCCore
import Foundation
import Synchronization

/// A self-coordinating `MailboxStore` in an etcd cluster (SPEC §4): etcd orders every
/// operation, so no coordinator is involved; `EtcdLayout` says where each thing lives.
///
/// - `read`, `version(of:)`: one linearizable range of the mailbox key.
/// - `write`: one txn (put, then the key's new version): never retried in a loop.
/// - `push`, `take`: compare-and-swap on the mailbox key's `mod_revision`, in the same
///   txn as a check of the mailbox's line (empty for a newcomer that may wait; oldest
///   place its own for a waiter, whose place the txn deletes; no check for a first try
///   that may not wait, which holds no place). A request that must wait, or loses a
///   race, takes a place in line (a key bound to the server's lease) and is served in
///   creation-revision order; between tries it sleeps on the `WakeBoard`, which the
///   watch stream bumps, and re-reads at least every second. A request that may not
///   wait passes the places ahead of it, as on its first try: after a lost race it
///   tries again on a fresh read, and answers `err full`/`err empty` only from a read
///   that shows no room or no message.
/// - Every change carries a `ChangeID` in its value: a change whose reply was lost is
///   resolved (the same CAS resent, or the history searched) before answering; only
///   when that fails within `--io-timeout` does the error say `outcome unknown`.
/// - etcd unreachable within `--io-timeout` → `StoreError.unreachable` (`err unavailable`).
final class EtcdStore: MailboxStore, @unchecked Sendable {
    let geometry: StoreGeometry
    let name: String
    let policy: CoordinatorPolicy
    let layout: EtcdLayout
    let client: EtcdClient
    let ioTimeout: Double
    private let board = WakeBoard()
    private let watch: EtcdWatch
    private let lease: EtcdLease
    /// This server's name in `ChangeID`s: its first lease (unique in the cluster).
    private let serverID: UInt64
    private let sequence = Atomic<UInt64>(0)
    private let queued = Atomic<Int>(0)
    private let knownServers = Atomic<Int>(1)
    private let detached = Atomic<Bool>(false)
    /// Set when a place in line may have been left behind (its delete failed): the
    /// keepalive thread then removes this server's places that no request holds.
    private let strayPlacesPossible = Atomic<Bool>(false)
    private let heldPlaces = Mutex<Set<String>>([])
    /// The version of this server's fence key that its writes compare.
    private let fenceVersion = Atomic<Int64>(0)
    /// The write-marker slots of this server (`writeMarker`): taken by a write for its
    /// duration, so that no two writes in progress share one.
    private let writeMarkers = Mutex(SlotPool())

    /// Seconds start-up waits for an endpoint (SPEC §1).
    static let startupSeconds = 10.0
    /// The largest mailbox: one etcd value, below etcd's 1.5 MiB request limit.
    static let maximumMailboxSize = 1024 * 1024
    /// Format of the store record and the mailbox values.
    static let formatVersion = 1

    /// Creates the store in etcd or attaches to it, as one more server of it.
    static func open(request: StoreRequestFacts, endpoints: [String], ioTimeout: Double) throws -> EtcdStore {
        guard request.geometry.mailboxSize <= maximumMailboxSize else {
            throw StoreError.tooLarge(
                "etcd keeps a mailbox in one value of at most 1024 KiB, not \(request.geometry.mailboxSize / 1024) KiB")
        }
        let client = EtcdClient(endpoints: endpoints)
        let layout = EtcdLayout(name: request.name)
        let deadline = monotonicSeconds() + startupSeconds
        do {
            try EtcdStoreRecord.createOrCheck(client: client, layout: layout, geometry: request.geometry,
                                              policy: request.policy, deadline: deadline)
            let lease = try EtcdLease(client: client, deadline: deadline)
            return try EtcdStore(request: request, client: client, layout: layout, lease: lease, ioTimeout: ioTimeout,
                                 deadline: deadline)
        } catch let failure as EtcdFailure {
            switch failure {
            case .notApplied, .outcomeUnknown:
                throw StoreError.unavailable(
                    "no etcd endpoint answered within \(Int(startupSeconds)) s (\(endpoints.joined(separator: ","))): \(failure)")
            case .rejected:
                throw StoreError.unavailable("etcd refused the store \"\(request.name)\": \(failure)")
            }
        }
    }

    private init(request: StoreRequestFacts, client: EtcdClient, layout: EtcdLayout, lease: EtcdLease, ioTimeout: Double,
                 deadline: Double) throws {
        geometry = request.geometry
        name = request.name
        policy = request.policy
        self.layout = layout
        self.client = client
        self.ioTimeout = ioTimeout
        self.lease = lease
        serverID = UInt64(bitPattern: lease.id)
        watch = EtcdWatch(endpoints: client.endpoints, layout: layout, board: board)
        try register(lease: lease.id, deadline: deadline)
        try raiseFence(deadline: deadline)
        watch.start()
        lease.startKeepalive(
            renewed: { [weak self] fresh in try? self?.register(lease: fresh, deadline: monotonicSeconds() + 3) },
            tick: { [weak self] in self?.sweepStrayPlaces() })
    }

    /// Puts this server's key, bound to `lease`.
    private func register(lease: Int64, deadline: Double) throws {
        let value = "pid=\(getpid())"
        _ = try client.call("/v3/kv/put", EtcdJSON.put(layout.server(lease: lease), Array(value.utf8), lease: lease),
                            deadline: deadline, idempotent: true)
    }

    /// The lease now (for the runtime record: `dipcrm` may revoke it after a crash).
    var leaseID: Int64 { lease.id }

    // MARK: calls

    private var ioDeadline: Double { monotonicSeconds() + ioTimeout }

    /// A read (resent freely), its failure as a `StoreError`.
    private func read(_ path: String, _ body: [String: Any]) throws -> [String: Any] {
        do {
            return try client.call(path, body, deadline: ioDeadline, idempotent: true)
        } catch let failure as EtcdFailure {
            throw unreachable(failure)
        }
    }

    private func unreachable(_ failure: EtcdFailure, outcomeUnknown: Bool = false) -> any Error {
        switch failure {
        case .rejected: return failure
        case .notApplied, .outcomeUnknown:
            let timeout = "\(Int(ioTimeout)) s"
            return StoreError.unreachable(outcomeUnknown
                ? "etcd cluster lost mid-change, outcome unknown (not learned within \(timeout)): \(failure)"
                : "etcd cluster unreachable within \(timeout): \(failure)")
        }
    }

    private func nextChange() -> ChangeID {
        ChangeID(server: serverID, sequence: sequence.add(1, ordering: .relaxed).newValue)
    }

    // MARK: MailboxStore

    func describe() -> StoreDescription {
        if !detached.load(ordering: .relaxed),
           let reply = try? client.call("/v3/kv/range", EtcdJSON.range(layout.servers, prefix: true, countOnly: true),
                                        deadline: monotonicSeconds() + min(ioTimeout, 2), idempotent: true)
        {
            knownServers.store(EtcdJSON.count(reply), ordering: .relaxed)
        }
        return StoreDescription(
            name: name, geometry: geometry, coordinator: policy.rawValue, servers: knownServers.load(ordering: .relaxed),
            recordFields: [("etcd_lease", String(UInt64(bitPattern: lease.id), radix: 16))],
            queuedRequests: queued.load(ordering: .relaxed),
            infoFields: [("etcd", client.endpoints.joined(separator: ","))])
    }

    func read(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        let reply = try read("/v3/kv/range", EtcdJSON.range(layout.mailbox(mailbox)))
        guard let kv = EtcdJSON.kvs(reply).first else {
            buffer.removeAll(keepingCapacity: true)
            return 0
        }
        buffer = try MailboxValue(decoding: kv.value).messages.last ?? []
        return UInt64(kv.version)
    }

    func version(of mailbox: Int) throws -> UInt64 {
        let reply = try read("/v3/kv/range", EtcdJSON.range(layout.mailbox(mailbox), keysOnly: true))
        return UInt64(EtcdJSON.kvs(reply).first?.version ?? 0)
    }

    /// One txn: the put, guarded by this server's fence (see `fence`), a mark of the
    /// change on one of this server's write markers, and the new version. Whether a write
    /// whose reply was lost was applied is settled by raising the fence (no copy of it
    /// still in flight can apply after that) and reading its marker (the mailbox itself
    /// cannot tell: other servers may have written it since); one that was not applied
    /// is sent again.
    func write(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64 {
        let key = layout.mailbox(mailbox)
        let message = Array(data)
        let deadline = ioDeadline
        let slot = writeMarkers.withLock { $0.take() }
        defer { writeMarkers.withLock { $0.give(slot) } }
        let marker = writeMarker(slot)
        while true {
            let change = nextChange()
            let value = MailboxValue(change: change, messages: [message]).encoded
            let body = EtcdJSON.txn(
                compare: [EtcdJSON.compare(fenceKey, target: "VERSION", "EQUAL", fenceVersion.load(ordering: .acquiring))],
                success: [
                    ["request_put": EtcdJSON.put(key, value)],
                    ["request_put": EtcdJSON.put(marker, MailboxValue(change: change, messages: []).encoded)],
                    ["request_range": EtcdJSON.range(key, keysOnly: true)],
                ],
                failure: [["request_range": EtcdJSON.range(fenceKey, keysOnly: true)]])
            do {
                let (succeeded, responses) = EtcdJSON.txnResult(try client.call("/v3/kv/txn", body, deadline: deadline, idempotent: false))
                if succeeded {
                    guard responses.count == 3, let kv = EtcdJSON.kvs(responses[2]["response_range"] as? [String: Any]).first else {
                        throw EtcdStoreFault.corrupt("a write's txn answered no version")
                    }
                    return UInt64(kv.version)
                }
                // Another request of this server raised the fence: not applied; again.
                let fence = responses.first.flatMap { EtcdJSON.kvs($0["response_range"] as? [String: Any]).first?.version } ?? 0
                fenceVersion.store(fence, ordering: .releasing)
            } catch let failure as EtcdFailure {
                guard case .outcomeUnknown = failure else { throw unreachable(failure) }
                do {
                    try raiseFence(deadline: deadline)
                    if let version = try appliedVersion(of: change, marker: marker, key: key, deadline: deadline) {
                        return version
                    }
                    // Not applied, and now it never will be: send it again.
                } catch {
                    throw unreachable(failure, outcomeUnknown: true)
                }
            }
        }
    }

    /// The VERSION that the write of `change` gave `key`, if it was applied (`marker`
    /// names it); nil if it was not. Only meaningful once the fence is raised.
    private func appliedVersion(of change: ChangeID, marker: String, key: String, deadline: Double) throws -> UInt64? {
        let reply = try client.call("/v3/kv/range", EtcdJSON.range(marker), deadline: deadline, idempotent: true)
        guard let mark = EtcdJSON.kvs(reply).first, try MailboxValue(decoding: mark.value).change == change else { return nil }
        // The mailbox as that txn left it.
        var body = EtcdJSON.range(key, keysOnly: true)
        body["revision"] = String(mark.modRevision)
        guard let written = EtcdJSON.kvs(try client.call("/v3/kv/range", body, deadline: deadline, idempotent: true)).first else {
            throw EtcdStoreFault.corrupt("a write's marker names a revision where its mailbox is absent")
        }
        return UInt64(written.version)
    }

    /// Write marker `slot` of this server: the last change written by the write that
    /// holds the slot (one slot per write in progress, reused afterwards).
    private func writeMarker(_ slot: Int) -> String { fenceKey + "/w/\(slot)" }

    /// This server's fence: a key only it changes, whose version every `write` compares,
    /// so that raising it voids the writes still in flight.
    private var fenceKey: String { layout.prefix + "f/" + String(serverID, radix: 16) }

    /// Raises the fence and records its new version.
    private func raiseFence(deadline: Double) throws {
        let reply = try client.call("/v3/kv/txn", EtcdJSON.txn(success: [
            ["request_put": EtcdJSON.put(fenceKey, [])], ["request_range": EtcdJSON.range(fenceKey, keysOnly: true)],
        ]), deadline: deadline, idempotent: true)
        let responses = EtcdJSON.txnResult(reply).responses
        guard responses.count == 2, let kv = EtcdJSON.kvs(responses[1]["response_range"] as? [String: Any]).first else {
            throw EtcdFailure.rejected("raising the fence answered no version")
        }
        fenceVersion.store(kv.version, ordering: .releasing)
    }

    func push(_ mailbox: Int, _ data: UnsafeRawBufferPointer, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64> {
        let message = Array(data)
        let geometry = geometry
        let outcome = try change(mailbox, .push, wait) { (messages: inout [[UInt8]]) -> Bool? in
            let used = messages.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count }
            guard StoreLayout.fits(used: used, adding: message.count, in: geometry) else { return nil }
            messages.append(message)
            return true
        }
        switch outcome {
        case let .done((version, _)): return .done(version)
        case .timedOut: return .timedOut
        case .abandoned: return .abandoned
        }
    }

    func take(_ mailbox: Int, into buffer: inout [UInt8], waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64> {
        let outcome = try change(mailbox, .take, wait) { (messages: inout [[UInt8]]) -> [UInt8]? in
            messages.isEmpty ? nil : messages.removeFirst()
        }
        switch outcome {
        case let .done((version, message)):
            buffer = message
            return .done(version)
        case .timedOut: return .timedOut
        case .abandoned: return .abandoned
        }
    }

    func waitForChange(of mailbox: Int, after version: UInt64, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<Void> {
        var first = true
        while true {
            if !first, wait.shouldAbandon() { return .abandoned }
            first = false
            let mark = board.mark(mailbox)
            if try self.version(of: mailbox) > version { return .done(()) }
            if !wait.waits || monotonicSeconds() >= wait.deadline { return .timedOut }
            board.wait(mailbox, since: mark, until: min(wait.deadline, monotonicSeconds() + 1))
        }
    }

    func detach() throws -> Bool {
        guard !detached.exchange(true, ordering: .acquiringAndReleasing) else { return false }
        lease.stopKeepalive()
        watch.stop()
        let deadline = monotonicSeconds() + min(ioTimeout, 5)
        // The places and the server key vanish with the lease; if etcd cannot be reached
        // they vanish when it expires.
        do { try lease.revoke(deadline: deadline) } catch { return false }
        // The write markers are this server's alone and no write is in progress now.
        _ = try? client.call("/v3/kv/deleterange", EtcdJSON.delete(fenceKey + "/w/", prefix: true),
                             deadline: deadline, idempotent: true)
        guard let reply = try? client.call("/v3/kv/range", EtcdJSON.range(layout.servers, prefix: true, countOnly: true),
                                           deadline: deadline, idempotent: true)
        else { return false }
        let left = EtcdJSON.count(reply)
        knownServers.store(left, ordering: .relaxed)
        return left == 0
    }

    // MARK: push and take

    /// A place in a line: its key and creation revision.
    private struct Place {
        var key: String
        var revision: Int64
    }

    /// One push or take: `transform` changes the message list and returns its result,
    /// or nil when it cannot now (full, empty). See the type's comment for the protocol.
    private func change<Result>(_ m: Int, _ kind: LineKind, _ wait: MailboxWait,
                                _ transform: (inout [[UInt8]]) -> Result?) throws -> MailboxWaitOutcome<(UInt64, Result)> {
        let key = layout.mailbox(m), line = layout.line(m, kind)
        var place: Place?
        defer { if let place { leave(place) } }
        var first = true
        while true {
            let mark = board.mark(m)
            // The mailbox and the head of its line, at one revision.
            let state = try read("/v3/kv/txn", EtcdJSON.txn(success: [
                ["request_range": EtcdJSON.range(key)],
                ["request_range": EtcdJSON.range(line, prefix: true, keysOnly: true, oldestFirst: true, limit: 1)],
            ]))
            let responses = EtcdJSON.txnResult(state).responses
            guard responses.count == 2 else { throw EtcdStoreFault.corrupt("a read txn answered \(responses.count) responses") }
            let current = EtcdJSON.kvs(responses[0]["response_range"] as? [String: Any]).first
            let head = EtcdJSON.kvs(responses[1]["response_range"] as? [String: Any]).first
            // Asked after the read: a change that this read saw was made after whatever
            // told the request to abandon, so the abandoned request never takes it.
            if !first, wait.shouldAbandon() { return .abandoned }
            first = false
            if place != nil, head == nil {
                // Its place vanished with an expired lease: it is alone in line anyway.
                abandonPlace(&place)
            }
            // A request that may not wait tries whoever waits (MailboxStore): a push that
            // fits now is made, beside pushers still waiting. When it loses a race it
            // takes a place (so newer waiting requests queue behind it) and tries again on
            // what it reads next, until it is served or that read shows no room or no
            // message: each lost race is another request served, and an `err full` or
            // `err empty` is only ever answered from what a read saw.
            let myTurn = !wait.waits || (place.map { $0.key == head?.key } ?? (head == nil))
            var value = try MailboxValue(decoding: current?.value ?? [])
            // A take that could be served now but is behind others keeps its place past
            // its deadline: any message serves any taker, so its turn comes as soon as
            // those ahead have taken theirs, and `err empty` with messages queued would
            // not be linearizable (SPEC §3). A push gives up at its deadline: the room
            // is kept for the pushes ahead (arrival order), which may need more.
            let keepsPlace = kind == .take && !value.messages.isEmpty
            let givingUp = !keepsPlace && (!wait.waits || monotonicSeconds() >= wait.deadline)
            if myTurn {
                if let result = transform(&value.messages) {
                    value.change = nextChange()
                    let version = UInt64((current?.version ?? 0) + 1)
                    var compares = [EtcdJSON.compare(key, target: "MOD", "EQUAL", current?.modRevision ?? 0)]
                    var success: [[String: Any]] = [["request_put": EtcdJSON.put(key, value.encoded)]]
                    if let place {
                        // No place older than its own (a request that may not wait
                        // passes the places ahead, as on its first try).
                        if wait.waits {
                            compares.append(EtcdJSON.compare(line, prefix: true, target: "CREATE", "GREATER", place.revision - 1))
                        }
                        success.append(["request_delete_range": EtcdJSON.delete(place.key)])
                    } else if wait.waits {
                        compares.append(EtcdJSON.compare(line, prefix: true, target: "CREATE", "EQUAL", 0))
                    }
                    let body = EtcdJSON.txn(compare: compares, success: success)
                    if try commit(body, key: key, change: value.change, after: current) {
                        if place != nil { forgetPlace(&place) }
                        return .done((version, result))
                    }
                    // Lost a race: wait in line (a request that may not wait tries again at once).
                    if place == nil { place = try join(line) }
                    continue
                }
                if givingUp { return .timedOut }
                if place == nil {
                    place = try join(line)
                    continue
                }
            } else {
                // Others wait before it.
                if givingUp { return .timedOut }
                if place == nil {
                    place = try join(line)
                    continue
                }
            }
            let now = monotonicSeconds()
            board.wait(m, since: mark, until: now < wait.deadline ? min(wait.deadline, now + 1) : now + 1)
        }
    }

    /// Sends a compare-and-swap txn; true when it was applied. A txn whose reply was lost
    /// is resolved: the same txn is resent (at most one of the copies can apply, since
    /// they compare one `mod_revision`); if it fails, the change after `previous` in the
    /// key's history says whether the first copy did.
    private func commit(_ body: [String: Any], key: String, change: ChangeID, after previous: EtcdJSON.KeyValue?) throws -> Bool {
        let deadline = ioDeadline
        do {
            return EtcdJSON.txnResult(try client.call("/v3/kv/txn", body, deadline: deadline, idempotent: false)).succeeded
        } catch let failure as EtcdFailure {
            guard case .outcomeUnknown = failure else { throw unreachable(failure) }
            do {
                if EtcdJSON.txnResult(try client.call("/v3/kv/txn", body, deadline: deadline, idempotent: true)).succeeded {
                    return true
                }
                // It no longer applies; whether the first copy did is in the history.
                return try nextChange(of: key, after: previous, deadline: deadline) == change
            } catch {
                throw unreachable(failure, outcomeUnknown: true)
            }
        }
    }

    /// The `ChangeID` of the change that followed `previous` (nil: the key was absent)
    /// on `key`, found by bisecting revisions; throws when the history was compacted.
    private func nextChange(of key: String, after previous: EtcdJSON.KeyValue?, deadline: Double) throws -> ChangeID? {
        let wanted = (previous?.version ?? 0) + 1
        let now = try client.call("/v3/kv/range", EtcdJSON.range(key), deadline: deadline, idempotent: true)
        guard let latest = EtcdJSON.kvs(now).first, latest.version >= wanted else { return nil }
        var low = (previous?.modRevision ?? 0) + 1, high = latest.modRevision
        func at(_ revision: Int64) throws -> EtcdJSON.KeyValue? {
            var body = EtcdJSON.range(key)
            body["revision"] = String(revision)
            return EtcdJSON.kvs(try client.call("/v3/kv/range", body, deadline: deadline, idempotent: true)).first
        }
        while low < high {
            let middle = low + (high - low) / 2
            if let kv = try at(middle), kv.version >= wanted { high = middle } else { low = middle + 1 }
        }
        guard let found = try at(low) else { return nil }
        return try MailboxValue(decoding: found.value).change
    }

    /// Takes a place at the end of `line`, bound to this server's lease.
    private func join(_ line: String) throws -> Place {
        let change = nextChange()
        let key = line + "\(String(change.server, radix: 16))-\(change.sequence)"
        _ = heldPlaces.withLock { $0.insert(key) }
        do {
            // The put and the key's creation revision (a resent put keeps the first one).
            let reply = try client.call("/v3/kv/txn", EtcdJSON.txn(success: [
                ["request_put": EtcdJSON.put(key, [], lease: lease.id)],
                ["request_range": EtcdJSON.range(key, keysOnly: true)],
            ]), deadline: ioDeadline, idempotent: true)
            let responses = EtcdJSON.txnResult(reply).responses
            guard responses.count == 2, let kv = EtcdJSON.kvs(responses[1]["response_range"] as? [String: Any]).first else {
                throw EtcdFailure.rejected("taking a place in line answered no revision")
            }
            queued.add(1, ordering: .relaxed)
            return Place(key: key, revision: kv.createRevision)
        } catch let failure as EtcdFailure {
            _ = heldPlaces.withLock { $0.remove(key) }
            strayPlacesPossible.store(true, ordering: .relaxed)
            throw unreachable(failure)
        }
    }

    /// Leaves the line: deletes the place (or leaves that to the keepalive thread).
    private func leave(_ place: Place) {
        _ = heldPlaces.withLock { $0.remove(place.key) }
        queued.subtract(1, ordering: .relaxed)
        do {
            _ = try client.call("/v3/kv/deleterange", EtcdJSON.delete(place.key), deadline: ioDeadline, idempotent: true)
        } catch {
            strayPlacesPossible.store(true, ordering: .relaxed)
        }
    }

    /// The place is gone from etcd (deleted by the successful txn, or expired).
    private func forgetPlace(_ place: inout Place?) {
        if let key = place?.key { _ = heldPlaces.withLock { $0.remove(key) } }
        queued.subtract(1, ordering: .relaxed)
        place = nil
    }

    private func abandonPlace(_ place: inout Place?) { forgetPlace(&place) }

    /// Removes this server's places that no request holds (after a failed delete).
    private func sweepStrayPlaces() {
        guard strayPlacesPossible.exchange(false, ordering: .relaxed) else { return }
        let mine = "\(String(serverID, radix: 16))-"
        do {
            let reply = try client.call("/v3/kv/range", EtcdJSON.range(layout.lines, prefix: true, keysOnly: true),
                                        deadline: monotonicSeconds() + 2, idempotent: true)
            let held = heldPlaces.withLock { $0 }
            for kv in EtcdJSON.kvs(reply) {
                guard let last = kv.key.split(separator: "/").last, last.hasPrefix(mine), !held.contains(kv.key) else { continue }
                _ = try client.call("/v3/kv/deleterange", EtcdJSON.delete(kv.key), deadline: monotonicSeconds() + 2,
                                    idempotent: true)
            }
        } catch {
            strayPlacesPossible.store(true, ordering: .relaxed)
        }
    }
}

/// What a store request says, as the etcd store needs it.
struct StoreRequestFacts: Sendable {
    var name: String
    var geometry: StoreGeometry
    var policy: CoordinatorPolicy
}

/// Small integers handed out one per holder, reused once given back.
struct SlotPool {
    private var free: [Int] = []
    private var count = 0

    /// A slot given back earlier if there is one, else a new one.
    mutating func take() -> Int {
        if let slot = free.popLast() { return slot }
        count += 1
        return count - 1
    }

    mutating func give(_ slot: Int) { free.append(slot) }
}
