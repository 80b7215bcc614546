import DIPCCore
/// A named piece of memory that several processes map: a System V segment or a
/// POSIX shared-memory object. Backends that keep their mailboxes in memory
/// provide one and let `MappedBlockBackend` lay the store out in it.
///
/// Contract: after `open`, `base` points at `size` bytes shared with every other
/// process that opened the same name. `created` is true when this open made the
/// object (its memory is zero-filled). `unmap` ends this process's mapping;
/// `remove` destroys the named object so that the next open creates a new one
/// (processes still mapping it keep their memory until they unmap).
public protocol SharedSegment: AnyObject {
    var base: UnsafeMutableRawPointer { get }
    var size: Int { get }
    var created: Bool { get }
    /// Facts for the runtime record, e.g. `("shm_id", "98317")`.
    var recordFields: [(String, String)] { get }
    func unmap()
    func remove() throws
    /// Whether the creator still runs (default in an extension).
    var creatorIsAlive: Bool { get }
    /// The creator's signal that formatting is done (default in an extension).
    func creationFinished()
}

extension SharedSegment {
    /// Whether the process that created the object still runs (see
    /// `BlockBackend.creatorIsAlive`). Default: true.
    public var creatorIsAlive: Bool { true }

    /// Called by the creator once the store in the object is formatted. Default: nothing.
    public func creationFinished() {}
}
