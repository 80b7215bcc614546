/// The store a server serves its mailboxes from: read, write, push, take, wait for a
/// change, describe. The server depends on this interface alone.
///
/// Two kinds of implementation exist. `SharedStore` wraps a `BlockBackend` (sysv,
/// posix, tdb) with the store header and the `Coordinator`, whose state lives in memory
/// every server of the store shares. A backend that orders operations itself (a
/// self-coordinating one, such as a store in a distributed database) implements this
/// protocol directly.
///
/// ## What a conforming store must do
/// - Mailbox numbers are in `0..<geometry.mailboxes` and data lengths at most
///   `geometry.mailboxSize`: the caller has checked them.
/// - Every operation is atomic and linearizable across every server sharing the store:
///   a read sees a whole value of some completed change, never a mix, and never one
///   older than a change that completed before the read began.
/// - A mailbox's version starts at 0 and grows by exactly 1 per completed change
///   (`write`, a successful `push`, a successful `take`); `read` returns the version of
///   the value it returns.
/// - Messages: `write` makes the mailbox's list exactly one message; `push` appends one
///   when `StoreLayout.fits` says it fits (else it waits, or answers `.timedOut`); `take`
///   removes the oldest (else waits, or `.timedOut`). An empty list reads as an empty value.
/// - Waiting (`MailboxWait`): a wait that allows waiting (`waits`) takes a place in its
///   mailbox's line — one line of pushers, one of takers — and is served in arrival order
///   across every server of the store; a wait that does not allow it tries once and holds
///   no place. Between tries a waiter holds no lock; it wakes within a second of a change
///   made by any server, gives up with `.timedOut` at its deadline, and with `.abandoned`
///   when `shouldAbandon` says so (asked before every try but the first), in which case
///   it changed nothing.
/// - `detach` releases this server's hold; it removes the store's shared objects when
///   no other live server holds the store (never persistent data) and says so.
/// - Errors are `SystemError` (a failed call and its errno) or `StoreError`.
///
/// `StoreConformance.verify` in `DIPCTestSupport` checks this for every registered
/// backend.
public protocol MailboxStore: AnyObject, Sendable {
    /// The mailboxes and their size.
    var geometry: StoreGeometry { get }
    /// What the store is, now (for `i`, the runtime record and the log).
    func describe() -> StoreDescription

    /// The newest message (empty when none) into `buffer`; returns its version.
    func read(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64
    /// The mailbox's version.
    func version(of mailbox: Int) throws -> UInt64
    /// Replaces the mailbox's list with one message; returns the new version.
    func write(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64
    /// Appends a message, waiting for room as `wait` allows; `.done` carries the new version.
    func push(_ mailbox: Int, _ data: UnsafeRawBufferPointer, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64>
    /// Removes the oldest message into `buffer`, waiting for one as `wait` allows; `.done`
    /// carries the new version.
    func take(_ mailbox: Int, into buffer: inout [UInt8], waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64>
    /// Returns `.done` once the mailbox's version exceeds `version` (at once when it does already).
    func waitForChange(of mailbox: Int, after version: UInt64, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<Void>

    /// Releases this server's hold on the store; true when that removed the store.
    func detach() throws -> Bool
}

/// How long a request may wait for its mailbox, and when to give up early.
public struct MailboxWait {
    /// Whether the request may wait at all (WAIT_MS > 0); one that may not tries once
    /// and takes no place in line.
    public let waits: Bool
    /// The monotonic time (`monotonicSeconds()`) at which waiting ends.
    public let deadline: Double
    /// Asked before every try but the first: true stops the wait (`.abandoned`).
    public let shouldAbandon: () -> Bool

    /// A wait of `milliseconds` from now (0: try once).
    public init(milliseconds: Int, shouldAbandon: @escaping () -> Bool = { false }) {
        waits = milliseconds > 0
        deadline = monotonicSeconds() + Double(milliseconds) / 1000
        self.shouldAbandon = shouldAbandon
    }

    /// Try once, never wait.
    public static var never: MailboxWait { MailboxWait(milliseconds: 0) }
}

/// How a wait for a mailbox ended.
public enum MailboxWaitOutcome<Value> {
    /// It succeeded with this value.
    case done(Value)
    /// The deadline passed first (nothing changed).
    case timedOut
    /// `shouldAbandon` asked to stop waiting (nothing changed).
    case abandoned
}

/// What a store is: for the `i` request, the runtime record and the log.
public struct StoreDescription: Sendable {
    /// The store's name (`--name`).
    public var name: String
    public var geometry: StoreGeometry
    /// Who orders operations: a `CoordinatorPolicy` name, or the engine for a
    /// self-coordinating store.
    public var coordinator: String
    /// Live servers attached to the store, this one included.
    public var servers: Int
    /// Facts for the runtime record so that `dipcrm` can clean up after a crash, e.g.
    /// `("slot", "3")`, `("shm_id", "1234")`.
    public var recordFields: [(String, String)]
    /// This server's requests now waiting in a mailbox's line.
    public var queuedRequests: Int
    /// Where the store lives, for the `i` reply after its standard pairs, when that is
    /// not this host's memory or files, e.g. `("etcd", "http://10.0.0.1:2379,...")`.
    /// Keys and values hold no spaces.
    public var infoFields: [(String, String)]

    public init(name: String, geometry: StoreGeometry, coordinator: String, servers: Int,
                recordFields: [(String, String)], queuedRequests: Int, infoFields: [(String, String)] = []) {
        self.name = name
        self.geometry = geometry
        self.coordinator = coordinator
        self.servers = servers
        self.recordFields = recordFields
        self.queuedRequests = queuedRequests
        self.infoFields = infoFields
    }
}
