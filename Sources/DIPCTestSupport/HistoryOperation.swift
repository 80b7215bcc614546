/// One request a client made against a mailbox, as a linearizability history records
/// it: who asked what, when it was invoked, when (and whether) the reply came, and what
/// the reply said.
///
/// Contract:
/// - Times are nanoseconds of one monotonic clock shared by every operation of a
///   history (`HistoryRecorder` uses `ContinuousClock`); only their order matters.
///   `invoked` is taken before the request's first byte is sent, `replied` after its
///   reply was fully read.
/// - Values (what `w` and `p` send) are unique within a history (`HistoryWorkload`
///   makes them from the client id and a per-client sequence number), so that the
///   checker can tell exactly which write a read saw and which push a take returned.
/// - `.unknown` results (the connection dropped before the reply, the reply was
///   `err unavailable ... outcome unknown`, or a backend failure) may or may not have
///   taken effect; the checker treats such an operation as possibly effective at any
///   instant after `invoked`, whatever `replied` says.
public struct HistoryOperation: Sendable, Equatable, CustomStringConvertible {
    /// The requests the checker understands (SPEC §2).
    public enum Kind: String, Sendable, Equatable {
        /// `r N`: the register's value and VERSION.
        case read = "r"
        /// `r N VERSION WAIT_MS` (a watch): a read answered when the VERSION passed the
        /// one given or the wait ended; checked as a read at its reply.
        case watch = "r-wait"
        /// `w N`: replaces the register's value; replies the new VERSION.
        case write = "w"
        /// `p N`: appends a message to the queue; replies the new VERSION.
        case push = "p"
        /// `c N`: removes the oldest message; replies it and the VERSION after the take.
        case take = "c"

        /// True for the kinds that change the mailbox (and so take a VERSION of their own).
        public var isChange: Bool { self != .read && self != .watch }

        /// True for `r` and watches: they return the value and VERSION of a register.
        public var isRead: Bool { self == .read || self == .watch }
    }

    /// What the reply said.
    public enum Result: Sendable, Equatable {
        /// `ok`: `value` is what `r` or `c` returned (nil for `w` and `p`), `version` the
        /// VERSION in the reply.
        case ok(value: String?, version: UInt64)
        /// `c` answered `err empty`: no message was there (no effect).
        case empty
        /// An error that promises no effect (`err full`, a plain `err unavailable`, ...).
        case failed(String)
        /// The outcome is unknown: the operation may or may not have taken effect.
        case unknown(String)
    }

    /// Which client made the request (one client sends one request at a time).
    public var client: Int
    public var mailbox: Int
    public var kind: Kind
    /// What a `w` or `p` sent; for a watch, "VERSION WAIT_MS"; nil for `r` and `c`.
    public var argument: String?
    /// Monotonic nanoseconds before the request was sent.
    public var invoked: UInt64
    /// Monotonic nanoseconds after the reply was read; nil when no reply came.
    public var replied: UInt64?
    public var result: Result

    public init(
        client: Int, mailbox: Int, kind: Kind, argument: String? = nil, invoked: UInt64, replied: UInt64?,
        result: Result
    ) {
        self.client = client
        self.mailbox = mailbox
        self.kind = kind
        self.argument = argument
        self.invoked = invoked
        self.replied = replied
        self.result = result
    }

    /// True when the outcome is unknown (may or may not have happened).
    public var isUnknown: Bool {
        if case .unknown = result { return true }
        return false
    }

    /// The VERSION of an `ok` reply.
    public var acknowledgedVersion: UInt64? {
        if case .ok(_, let version) = result { return version }
        return nil
    }

    /// When the operation certainly had completed: its reply time, except for unknown
    /// outcomes (which may take effect at any later instant) and missing replies.
    public var completed: UInt64? { isUnknown ? nil : replied }

    /// One line naming the operation, e.g. `client 3 w(c3-17) on mailbox 0 [1200..1450] -> ok v5`.
    public var description: String {
        let what = argument.map { "\(kind.rawValue)(\($0))" } ?? kind.rawValue
        let end = replied.map(String.init) ?? "never"
        let outcome: String
        switch result {
        case .ok(let value, let version): outcome = value.map { "ok \($0.debugDescription) v\(version)" } ?? "ok v\(version)"
        case .empty: outcome = "empty"
        case .failed(let why): outcome = "failed (\(why))"
        case .unknown(let why): outcome = "unknown (\(why))"
        }
        return "client \(client) \(what) on mailbox \(mailbox) [\(invoked)..\(end)] -> \(outcome)"
    }
}
