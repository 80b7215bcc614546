/// Storage for the mailboxes of one named store: `k` blocks of `size` bytes, each
/// holding a list of messages and a version.
///
/// A backend is opened by its own factory (it creates the store when it does not
/// exist and attaches to it otherwise) and is always used through a `SharedStore`,
/// which wraps it with the store header and the `Coordinator`. That gives every
/// backend the same locking; a backend never locks mailboxes itself.
///
/// ## What a conforming backend must do
/// - `control` is memory that every process attached to the same store sees, of at
///   least `StoreLayout.controlSize(for:)` bytes; it holds the store header and the
///   coordinator's lock state. When `createdControl` is true the memory is
///   zero-filled and nobody else has seen it yet (the caller formats it).
/// - The block operations are called only while the coordinator holds the
///   mailbox's lock: read operations under a read lock (they may run in parallel),
///   mutating ones under the write lock. `mailbox` is always in `0..<geometry.mailboxes`
///   and data lengths never exceed `geometry.mailboxSize`.
/// - A mutation is atomic: if the process dies at any instant, a later reader sees
///   either the old content and version or the new, never a mix.
/// - The version of a mailbox starts at 0 and grows by exactly 1 per completed change.
/// - Messages: `replace` makes the list exactly one message; `append` adds one at the
///   end when `StoreLayout.fits` says it fits, and otherwise returns nil and changes
///   nothing; `takeOldest` removes the first (nil when empty). An empty list reads as
///   an empty value.
/// - `queueState` tells how many messages the list holds and how many bytes they use
///   (`StoreLayout.messageOverhead` each plus their data), as `append` counts them.
/// - `close(removing:)` releases what this process holds; with `removing` it also
///   destroys the shared objects of the store (never a TDB file).
/// - Errors are `SystemError` (a failed call and its errno) or `StoreError`.
///
/// The conformance suite in `DIPCTestSupport` checks all of this for every backend.
public protocol BlockBackend: AnyObject {
    /// The geometry the store was opened with (validated against the store header).
    var geometry: StoreGeometry { get }
    /// Shared memory for the store header and the coordinator.
    var control: UnsafeMutableRawPointer { get }
    /// True when this open created `control` (zero-filled, not yet formatted).
    var createdControl: Bool { get }
    /// Facts for the runtime record, e.g. `("shm_id", "1234")`.
    var recordFields: [(String, String)] { get }

    /// Copies the newest message into `buffer` (replacing its content) and returns the version.
    func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64
    /// The mailbox's version.
    func version(of mailbox: Int) throws -> UInt64
    /// Replaces the whole list with one message; returns the new version.
    func replace(_ mailbox: Int, with data: UnsafeRawBufferPointer) throws -> UInt64
    /// Appends a message; returns the new version, or nil when it does not fit now.
    func append(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64?
    /// Removes the oldest message into `buffer`; returns the new version, or nil when empty.
    func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64?
    /// The list's length and the bytes it uses, changing nothing (a read operation).
    func queueState(_ mailbox: Int) throws -> QueueState
    /// Releases this process's hold on the store; `removing` destroys the store's shared objects.
    func close(removing: Bool) throws
    /// Whether the creator of the shared objects still runs (default in an extension).
    var creatorIsAlive: Bool { get }
    /// The creator's signal that formatting is done (default in an extension).
    func creationFinished()
}

extension BlockBackend {
    /// Whether the process that created this store's shared objects still runs. It is
    /// asked only while the store header says "formatting": a store whose creator died
    /// before finishing is garbage that the next opener removes. Default: true.
    public var creatorIsAlive: Bool { true }

    /// Called by the creator once the store is formatted and published. Default: nothing.
    public func creationFinished() {}
}

/// How full a mailbox's message list is.
public struct QueueState: Sendable, Equatable {
    /// Messages in the list.
    public var count: Int
    /// Bytes the list uses: `StoreLayout.messageOverhead` per message plus its data.
    public var usedBytes: Int

    public init(count: Int, usedBytes: Int) {
        self.count = count
        self.usedBytes = usedBytes
    }
}
