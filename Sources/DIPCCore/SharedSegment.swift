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
}
