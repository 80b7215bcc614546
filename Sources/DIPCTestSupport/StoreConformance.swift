import DIPCCore
import Glibc

/// The conformance suite of `MailboxStore` (its doc comment is the contract): every
/// store the server can use must pass it, whether `SharedStore` over a coordinated
/// backend or a backend that implements `MailboxStore` itself.
///
/// It uses the interface only. `verify(_:)` runs each `Check` on fresh stores of the
/// factory (names unique to the process), opening a store name twice where the check
/// needs two servers; it cleans every store up afterwards (detaching what is still
/// attached, then `factory.cleanup`), joins every thread it started, and throws a
/// `ConformanceFailure` whose `check` starts with the violated clause:
///
///     try StoreConformance.verify(.inMemory, policy: .phaseFair)
public enum StoreConformance {
    /// One clause of the contract, checked on its own store(s).
    public enum Check: String, CaseIterable, Sendable {
        /// A new store reads empty at version 0 on every mailbox (`read` and
        /// `version(of:)`); `write` returns version + 1 and `read` returns exactly its
        /// bytes, for lengths 0, 1 and `mailboxSize` among others; reads change nothing;
        /// the version grows by exactly 1 per write, push and take, and a failed push or
        /// take changes nothing; `write` turns a list of several messages into one;
        /// mailboxes are independent; `waitForChange` is done at once when the version
        /// is already past; `describe()` reports the name, the geometry, a coordinator,
        /// no queued requests and `servers` equal to the handles open.
        case contract
        /// Two handles of one name (two servers) see each other's writes, pushes and
        /// takes, with the same versions.
        case sharing
        /// Pushes are taken oldest first with their boundaries kept (lengths 0 and 1
        /// among them); a push accepted exactly while `StoreLayout.fits` says so; a push
        /// beyond capacity with `MailboxWait.never` is `.timedOut` and changes nothing;
        /// `read` returns the newest message; a take from an empty list is `.timedOut`
        /// and changes nothing; a full-size message fills the list.
        case queueOrder
        /// A take waiting on one handle is served by a push through the other within a
        /// second; a take from an empty list and a push to a full one time out, not
        /// before their deadline; `waitForChange` is done within a second of a write
        /// through the other handle, and times out at its deadline when nothing
        /// changes; a waiting take whose `shouldAbandon` says so ends `.abandoned` and
        /// takes nothing; `describe().queuedRequests` counts the waiting requests.
        case waiting
        /// Three takers, on two handles, queued one after another, are served by three
        /// pushes in arrival order: taker i gets message i.
        case arrivalOrder
        /// Writers and readers on two handles for a while: no torn or mixed value, no
        /// empty value after a write, each reader's versions of a mailbox never go back
        /// (nor change content at one version), no read older than a write that
        /// completed before it began, and each mailbox's final version is its number of
        /// writes.
        case atomicity
        /// `detach` of the first of two handles returns false and keeps the store (the
        /// other still reads it, `servers` counts one); the last returns true and
        /// removes the store's shared objects (`leftovers` empty); the next open finds
        /// a new empty store, or for a persistent backend the content and version kept.
        case detach
    }

    /// The geometry the checks use unless told otherwise: odd sizes on purpose.
    public static let defaultGeometry = StoreGeometry(mailboxes: 5, mailboxSize: 1000)
    /// The smallest mailbox the checks' messages fit in (a few small messages at once).
    public static let minimumMailboxSize = 64

    /// Runs `checks` (all by default) against `factory`'s stores, opened with `policy`,
    /// and returns the checks that passed. Throws the first `ConformanceFailure`.
    /// `atomicitySeconds` is how long the `atomicity` writers run. The geometry needs
    /// at least `minimumMailboxSize` bytes per mailbox.
    @discardableResult
    public static func verify(
        _ factory: StoreFactory, policy: CoordinatorPolicy = .fifo, checks: [Check] = Check.allCases,
        geometry: StoreGeometry = defaultGeometry, atomicitySeconds: Double = 1
    ) throws -> [Check] {
        precondition(geometry.mailboxSize >= minimumMailboxSize, "mailboxSize below \(minimumMailboxSize)")
        var passed: [Check] = []
        for check in checks {
            let run = StoreRun(factory: factory, check: check, policy: policy, geometry: geometry,
                               atomicitySeconds: atomicitySeconds)
            defer { run.cleanUp() }
            try run.perform()
            passed.append(check)
        }
        return passed
    }
}

/// One check on one factory: the stores and handles it opened.
final class StoreRun {
    let factory: StoreFactory
    let check: StoreConformance.Check
    let policy: CoordinatorPolicy
    let g: StoreGeometry
    let atomicitySeconds: Double
    /// Phrases failures; `Sendable`, so threads of a check use it too.
    let clause: StoreClause
    private var names: [String] = []
    private var attached: [any MailboxStore] = []

    init(factory: StoreFactory, check: StoreConformance.Check, policy: CoordinatorPolicy, geometry: StoreGeometry,
         atomicitySeconds: Double) {
        self.factory = factory
        self.check = check
        self.policy = policy
        self.g = geometry
        self.atomicitySeconds = atomicitySeconds
        clause = StoreClause(backend: "\(factory.name) (\(policy.rawValue))", check: check.rawValue)
    }

    func perform() throws {
        switch check {
        case .contract: try checkContract()
        case .sharing: try checkSharing()
        case .queueOrder: try checkQueueOrder()
        case .waiting: try checkWaiting()
        case .arrivalOrder: try checkArrivalOrder()
        case .atomicity: try checkAtomicity()
        case .detach: try checkDetach()
        }
    }

    /// Detaches every handle still attached, then destroys every store the check used.
    func cleanUp() {
        for store in attached { _ = try? store.detach() }
        attached.removeAll()
        for name in names { factory.cleanup(name) }
    }

    // MARK: stores

    /// A fresh store name, first cleaned of anything a crashed earlier run left.
    func freshName() -> String {
        let name = BackendConformance.uniqueName("sconf-\(factory.name)")
        factory.cleanup(name)
        names.append(name)
        return name
    }

    /// Opens `name` as one more server (handle) of it.
    func open(_ name: String, _ step: String) throws -> any MailboxStore {
        let store = try clause.attempt("\(step): open(\"\(name)\")") { try factory.open(name, g, policy) }
        attached.append(store)
        return store
    }

    /// Detaches `store` (once); returns what `detach()` returned.
    func detach(_ store: any MailboxStore, _ step: String) throws -> Bool {
        attached.removeAll { $0 === store }
        return try clause.attempt("\(step): detach()") { try store.detach() }
    }

    func expectNoLeftovers(_ name: String, _ step: String) throws {
        let left = factory.leftovers(name)
        if !left.isEmpty { throw clause.fail("\(step): leftovers(\"\(name)\")", expected: "nothing", got: left.joined(separator: ", ")) }
    }

    // MARK: the checks on one or two handles, without threads

    func checkContract() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "first handle")
        try expectDescription(a, name: name, servers: 1, "new store")
        for m in 0..<g.mailboxes {
            try c.expectContent(a, m, [], 0, "fresh mailbox \(m)")
            try c.expect(try c.take(a, m, .never, "fresh mailbox \(m)").ended, .timedOut, "take(\(m), .never) of a fresh mailbox")
            try c.expect(try c.version(a, m, "after the failed take"), 0, "version(of: \(m)) after a failed take")
            try c.expect(try c.waitForChange(a, m, after: 0, .never, "fresh mailbox \(m)"), .timedOut,
                         "waitForChange(\(m), after: 0, .never) of a fresh mailbox")
        }
        let b = try open(name, "second handle")
        try expectDescription(a, name: name, servers: 2, "first handle once a second is open")
        try expectDescription(b, name: name, servers: 2, "second handle")

        let m = g.mailboxes > 1 ? 1 : 0
        var version: UInt64 = 0
        for (i, length) in [1, 0, g.mailboxSize, g.mailboxSize - 1, 13].enumerated() {
            let value = pattern(length, seed: UInt64(100 + i))
            version += 1
            try c.expect(try c.write(a, m, value, "write \(i + 1)"), version, "version returned by write \(i + 1) (\(length) bytes)")
            try c.expectContent(a, m, value, version, "after write \(i + 1) (\(length) bytes)")
            try c.expectContent(a, m, value, version, "a second read after write \(i + 1) (reads change nothing)")
        }
        try c.expect(try c.waitForChange(a, m, after: version - 1, .never, "after the writes"), .changed,
                     "waitForChange(\(m), after: version - 1, .never)")
        try c.expect(try c.waitForChange(a, m, after: version, .never, "after the writes"), .timedOut,
                     "waitForChange(\(m), after: the current version, .never)")

        // Push and take count one each; write replaces the whole list.
        let first = pattern(5, seed: 110), second = pattern(6, seed: 111), single = pattern(21, seed: 112)
        version += 1
        try c.expect(try c.push(a, m, first, .never, "push 1"), .done(version), "push 1 onto a one-message list")
        version += 1
        try c.expect(try c.push(a, m, second, .never, "push 2"), .done(version), "push 2")
        version += 1
        try c.expect(try c.write(a, m, single, "write over a list"), version, "version returned by a write over three messages")
        try c.expectContent(a, m, single, version, "after a write over three messages")
        let taken = try c.take(a, m, .never, "take after the write")
        version += 1
        try c.expect(taken.ended, .done(version), "take of the written message")
        try c.expectBytes(taken.data, single, "take after a write over a list returns the written message")
        try c.expect(try c.take(a, m, .never, "take of an emptied list").ended, .timedOut,
                     "take after a write over a list (the write left exactly one message)")
        try c.expectContent(a, m, [], version, "an emptied mailbox")

        // Mailboxes are independent.
        for other in 0..<g.mailboxes where other != m {
            try c.expectContent(a, other, [], 0, "mailbox \(other) after writes to mailbox \(m)")
        }
        if g.mailboxes > 1 {
            let last = g.mailboxes - 1, value = pattern(g.mailboxSize, seed: 113)
            try c.expect(try c.write(a, last, value, "write to the last mailbox"), 1, "version of the last mailbox's first write")
            try c.expectContent(a, last, value, 1, "the last mailbox")
            try c.expectContent(a, m, [], version, "mailbox \(m) after a write to the last one")
        }
        try expectDescription(a, name: name, servers: 2, "first handle at the end")
    }

    /// `describe()` names the store, reports its geometry, a coordinator, `servers` and
    /// no queued requests.
    func expectDescription(_ store: any MailboxStore, name: String, servers: Int, _ step: String) throws {
        let d = store.describe()
        try clause.expect(d.name, name, "\(step): describe().name")
        try clause.expect(d.geometry, g, "\(step): describe().geometry")
        try clause.expect(store.geometry, g, "\(step): geometry")
        try clause.expect(d.servers, servers, "\(step): describe().servers (the handles open)")
        try clause.expect(d.queuedRequests, 0, "\(step): describe().queuedRequests (none waiting)")
        if d.coordinator.isEmpty { throw clause.fail("\(step): describe().coordinator", expected: "a name", got: "\"\"") }
    }

    func checkSharing() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "server A"), b = try open(name, "server B")
        let value = pattern(g.mailboxSize, seed: 200)
        try c.expect(try c.write(a, 0, value, "A writes"), 1, "version of A's write")
        try c.expectContent(b, 0, value, 1, "B reads A's write")
        let reply = pattern(3, seed: 201)
        try c.expect(try c.write(b, 0, reply, "B writes"), 2, "version of B's write after A's")
        try c.expectContent(a, 0, reply, 2, "A reads B's write")

        let m = g.mailboxes - 1
        let x = pattern(4, seed: 202), y = pattern(9, seed: 203)
        try c.expect(try c.push(b, m, x, .never, "B pushes x"), .done(1), "version of B's push")
        try c.expect(try c.push(a, m, y, .never, "A pushes y"), .done(2), "version of A's push after B's")
        try c.expectContent(b, m, y, 2, "B reads A's push (the newest)")
        let taken = try c.take(a, m, .never, "A takes")
        try c.expect(taken.ended, .done(3), "version of A's take")
        try c.expectBytes(taken.data, x, "A takes B's push (the oldest)")
        let rest = try c.take(b, m, .never, "B takes")
        try c.expect(rest.ended, .done(4), "version of B's take")
        try c.expectBytes(rest.data, y, "B takes A's push")
        try c.expectContent(a, m, [], 4, "A reads the list B emptied")
        try c.expect(try c.waitForChange(a, m, after: 3, .never, "A"), .changed, "A's waitForChange(after: 3) once B took at 4")
    }

    func checkDetach() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "first handle"), b = try open(name, "second handle")
        let value = pattern(77, seed: 700)
        try c.expect(try c.write(a, 0, value, "first handle"), 1, "version of the first write")
        let removedFirst = try detach(b, "second handle (the first to detach)")
        try c.expect(a.describe().servers, 1, "describe().servers once the other handle detached")
        try c.expectContent(a, 0, value, 1, "the remaining handle after the other detached")
        try c.expect(try c.write(a, 0, value, "the remaining handle"), 2, "version of a write after the other handle detached")
        let removedLast = try detach(a, "first handle (the last to detach)")
        if [removedFirst, removedLast] != [false, true] {
            throw c.fail("what detach() returned, first then last handle", expected: "[false, true] (only the last removes the store)",
                         got: "\([removedFirst, removedLast])")
        }
        try expectNoLeftovers(name, "after the last handle detached")

        let again = try open(name, "a handle opened after the store was removed")
        try c.expect(again.describe().servers, 1, "describe().servers of the only handle")
        if factory.persistent {
            try c.expectContent(again, 0, value, 2, "a persistent store reopened (content and version kept)")
        } else {
            try c.expectContent(again, 0, [], 0, "a removed store reopened (a new, empty store)")
        }
        try c.expect(try detach(again, "the reopened handle"), true, "detach() of the only handle")
        try expectNoLeftovers(name, "after the reopened handle detached")
    }
}
