/// One value read from a mailbox: the bytes of one message and the mailbox's
/// version (its count of completed changes) at the time of the read.
///
/// A never-written mailbox reads as `Message(data: [], version: 0)`.
public struct Message: Equatable, Sendable {
    /// The message's bytes, exactly as they were written.
    public var data: [UInt8]
    /// The mailbox's version when the reply was produced (after the take, for a consume).
    public var version: UInt64

    public init(data: [UInt8], version: UInt64) {
        self.data = data
        self.version = version
    }
}
