import DIPCCore

/// Where a store lives in etcd: every key begins with `dipc/NAME/`.
///
/// - `dipc/NAME/store`: the store's record (`EtcdStoreRecord`: format, geometry,
///   coordinator), written once by the first server.
/// - `dipc/NAME/m/N`: mailbox N's message list (`MailboxValue`); absent until the first
///   change, never deleted, so etcd's per-key `version` is the mailbox's VERSION.
/// - `dipc/NAME/l/N/t/ID` and `dipc/NAME/l/N/p/ID`: places in mailbox N's line of
///   takers and of pushers, bound to the lease of the server that waits; a line is
///   served in creation-revision order.
/// - `dipc/NAME/s/LEASE`: one key per live server, bound to its lease.
/// - `dipc/NAME/f/SERVER`: a server's write fence (see `EtcdStore.write`), one small
///   key per server ever started, kept with the data.
/// - `dipc/NAME/f/SERVER/w/SLOT`: a server's write markers, one per write it has in
///   progress at once (the change id each last wrote), deleted when the server stops;
///   a killed server's stay, as small as its fence.
struct EtcdLayout: Sendable {
    let name: String

    var prefix: String { "dipc/\(name)/" }
    var record: String { prefix + "store" }
    func mailbox(_ m: Int) -> String { prefix + "m/\(m)" }
    var servers: String { prefix + "s/" }
    func server(lease: Int64) -> String { servers + String(UInt64(bitPattern: lease), radix: 16) }
    /// Every place in every line.
    var lines: String { prefix + "l/" }
    /// The prefix of mailbox `m`'s line of `kind`.
    func line(_ m: Int, _ kind: LineKind) -> String { prefix + "l/\(m)/\(kind.rawValue)/" }

    /// The mailbox a key under this store concerns (its list or its lines), if any.
    func mailboxNumber(ofKey key: String) -> Int? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        let parts = rest.split(separator: "/", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "m" || parts[0] == "l" else { return nil }
        return Int(parts[1])
    }
}

/// The two lines of a mailbox.
enum LineKind: String, Sendable {
    /// Takers waiting for a message.
    case take = "t"
    /// Pushers waiting for room.
    case push = "p"
}

/// A mailbox's value in etcd: a 16-byte header naming the change that wrote it (the
/// server's lease and a per-server sequence number: how a server recognises its own
/// change after losing the reply), then the messages as `[UInt64 length LE][bytes]`,
/// oldest first (the same per-message overhead as `StoreLayout.messageOverhead`).
struct MailboxValue {
    static let headerSize = 16

    var change: ChangeID
    var messages: [[UInt8]]

    /// The bytes the messages use, as `StoreLayout.fits` counts them.
    var used: Int { messages.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count } }

    init(change: ChangeID, messages: [[UInt8]]) {
        self.change = change
        self.messages = messages
    }

    /// Decodes a stored value; an absent key (empty bytes) is an empty list.
    init(decoding bytes: [UInt8]) throws {
        guard !bytes.isEmpty else {
            self.init(change: ChangeID(server: 0, sequence: 0), messages: [])
            return
        }
        guard bytes.count >= Self.headerSize else { throw EtcdStoreFault.corrupt("mailbox value of \(bytes.count) bytes") }
        func word(_ at: Int) -> UInt64 {
            var value: UInt64 = 0
            for i in 0..<8 { value |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            return value
        }
        var messages: [[UInt8]] = []
        var at = Self.headerSize
        while at < bytes.count {
            guard at + 8 <= bytes.count else { throw EtcdStoreFault.corrupt("truncated message length") }
            let length = Int(truncatingIfNeeded: word(at))
            at += 8
            guard length >= 0, length <= bytes.count - at else { throw EtcdStoreFault.corrupt("message overruns the value") }
            messages.append(Array(bytes[at..<(at + length)]))
            at += length
        }
        self.init(change: ChangeID(server: word(0), sequence: word(8)), messages: messages)
    }

    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerSize + used)
        func append(_ word: UInt64) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) } }
        append(change.server)
        append(change.sequence)
        for message in messages {
            append(UInt64(message.count))
            out.append(contentsOf: message)
        }
        return out
    }
}

/// Names one change: the server (its first lease) and its sequence number.
struct ChangeID: Equatable, Sendable {
    var server: UInt64
    var sequence: UInt64
}

/// Store faults of the etcd backend that are not reachability.
enum EtcdStoreFault: Error, CustomStringConvertible {
    case corrupt(String)

    var description: String {
        switch self {
        case let .corrupt(reason): return "etcd holds an unreadable mailbox: \(reason)"
        }
    }
}
