import DIPCCore

/// A copy of each mailbox's newest message and version, kept in the store's shared
/// control map right after the coordinator's region, so that a read is served from
/// memory without libtdb's chain lock (two `fcntl`s) or this process's file mutex
/// (docs/PERFORMANCE.md). Every server on the file maps the same control map, so they
/// share the copies.
///
/// Consistency rests on the coordinator (`BlockBackend`'s contract): a mailbox's copy
/// is read only under its read lock and changed only under its write lock, in every
/// process sharing the store. A change marks the copy stale *before* it stores its
/// record in the transaction, and fills it and marks it current only *after* the
/// transaction committed. So a copy marked current always equals the mailbox as last
/// committed to the file: a process killed anywhere in a change, or a failed commit,
/// leaves it stale, and reads go to the file (which TDB has recovered) until the next
/// committed change. Durability is the file's alone: nothing is acknowledged from here
/// that the file does not hold.
///
/// Layout, per mailbox, from `offset(for:)`, entries of `entrySize(for:)` bytes (64-byte
/// aligned): `state` (UInt64: 0 stale, else the version + 1), `length` (UInt64), then
/// the newest message's bytes. A new control map is zero-filled: all copies stale.
struct TDBReadMirror {
    private let base: UnsafeMutableRawPointer
    private let geometry: StoreGeometry

    /// Where the copies begin in the control map.
    static func offset(for geometry: StoreGeometry) -> Int {
        StoreLayout.roundUp(StoreLayout.controlSize(for: geometry), to: 64)
    }

    static func entrySize(for geometry: StoreGeometry) -> Int {
        StoreLayout.roundUp(16 + geometry.mailboxSize, to: 64)
    }

    /// The size of a TDB store's control map: the store header, the coordinator and the copies.
    static func controlSize(for geometry: StoreGeometry) -> Int {
        offset(for: geometry) + geometry.mailboxes * entrySize(for: geometry)
    }

    /// The copies in `control`, a map of at least `controlSize(for: geometry)` bytes.
    init(control: UnsafeMutableRawPointer, geometry: StoreGeometry) {
        base = control + Self.offset(for: geometry)
        self.geometry = geometry
    }

    private func entry(_ mailbox: Int) -> UnsafeMutableRawPointer {
        base + mailbox * Self.entrySize(for: geometry)
    }

    /// Marks the copy stale. Under the mailbox's write lock, before the change is stored.
    func markStale(_ mailbox: Int) {
        entry(mailbox).storeBytes(of: 0, as: UInt64.self)
    }

    /// Sets the copy to `newest` at `version` and marks it current. Under the mailbox's
    /// write lock, after the change committed.
    func publish(_ mailbox: Int, version: UInt64, newest: UnsafeRawBufferPointer) {
        precondition(newest.count <= geometry.mailboxSize, "a message longer than its mailbox")
        let entry = entry(mailbox)
        entry.storeBytes(of: UInt64(newest.count), toByteOffset: 8, as: UInt64.self)
        if newest.count > 0 { (entry + 16).copyMemory(from: newest.baseAddress!, byteCount: newest.count) }
        entry.storeBytes(of: version &+ 1, as: UInt64.self)
    }

    /// Copies the newest message into `buffer` and returns the version, or nil (buffer
    /// untouched) when the copy is stale. Under the mailbox's read (or write) lock.
    func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) -> UInt64? {
        let entry = entry(mailbox)
        let state = entry.load(as: UInt64.self)
        guard state != 0 else { return nil }
        let length = Int(entry.load(fromByteOffset: 8, as: UInt64.self))
        guard length <= geometry.mailboxSize else { return nil }  // never written so; the file decides
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: entry + 16, count: length))
        return state - 1
    }

    /// The version, or nil when the copy is stale. Under the mailbox's read (or write) lock.
    func version(of mailbox: Int) -> UInt64? {
        let state = entry(mailbox).load(as: UInt64.self)
        return state == 0 ? nil : state - 1
    }
}
