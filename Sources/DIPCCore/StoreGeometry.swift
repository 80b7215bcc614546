/// The shape of a store: how many mailboxes and how many bytes each holds.
///
/// Two servers may share a store only when their geometries are equal. The packet
/// size is per server and is not part of the geometry.
public struct StoreGeometry: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Number of mailboxes, numbered `0..<mailboxes`.
    public let mailboxes: Int
    /// Capacity of one mailbox in bytes: the largest value `w` accepts.
    public let mailboxSize: Int

    public init(mailboxes: Int, mailboxSize: Int) {
        precondition(mailboxes > 0 && mailboxSize > 0, "geometry must be positive")
        self.mailboxes = mailboxes
        self.mailboxSize = mailboxSize
    }

    public var description: String {
        "\(mailboxes) mailboxes of \(mailboxSize) bytes"
    }
}
