import Glibc

/// An `errno` value, typed (in the manner of swift-system's `Errno`), so code matches
/// failures by name (`case .interrupted`) instead of comparing raw integers.
///
/// `description` is the system's text for the value (`strerror`), e.g.
/// `No space left on device`.
public struct Errno: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) {
        self.rawValue = rawValue
    }

    /// The calling thread's current `errno`.
    public static var current: Errno { Errno(rawValue: Glibc.errno) }

    public var description: String {
        guard let text = strerror(rawValue) else { return "errno \(rawValue)" }
        return String(cString: text)
    }

    /// `EINTR`: a signal arrived before the call completed; `systemCall` retries it.
    public static let interrupted = Errno(rawValue: EINTR)
    /// `EAGAIN` (= `EWOULDBLOCK` on Linux): a non-blocking call or a socket timeout.
    public static let wouldBlock = Errno(rawValue: EAGAIN)
    /// `ENOENT`.
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)
    /// `ENOTDIR`.
    public static let notADirectory = Errno(rawValue: ENOTDIR)
    /// `EEXIST`.
    public static let fileExists = Errno(rawValue: EEXIST)
    /// `ESRCH`.
    public static let noSuchProcess = Errno(rawValue: ESRCH)
    /// `EINVAL`.
    public static let invalidArgument = Errno(rawValue: EINVAL)
    /// `EIDRM`: a System V object was removed.
    public static let identifierRemoved = Errno(rawValue: EIDRM)
    /// `EOPNOTSUPP`: the operation does not apply to this kind of object (a TCP option on a Unix socket).
    public static let operationNotSupported = Errno(rawValue: EOPNOTSUPP)
    /// `EACCES`.
    public static let permissionDenied = Errno(rawValue: EACCES)
    /// `EADDRINUSE`.
    public static let addressInUse = Errno(rawValue: EADDRINUSE)
    /// `ECONNABORTED`: a connection was reset while it waited to be accepted.
    public static let connectionAborted = Errno(rawValue: ECONNABORTED)
    /// `EPROTO`.
    public static let protocolError = Errno(rawValue: EPROTO)
    /// `EMFILE`: this process has no descriptor left.
    public static let tooManyOpenFiles = Errno(rawValue: EMFILE)
    /// `ENFILE`: the system has no descriptor left.
    public static let tooManyOpenFilesInSystem = Errno(rawValue: ENFILE)
    /// `ENOBUFS`.
    public static let noBufferSpace = Errno(rawValue: ENOBUFS)
    /// `ENOMEM`.
    public static let noMemory = Errno(rawValue: ENOMEM)
    /// `ENOSPC`.
    public static let noSpace = Errno(rawValue: ENOSPC)
    /// `EFBIG`.
    public static let fileTooLarge = Errno(rawValue: EFBIG)
    /// `ETIMEDOUT`.
    public static let timedOut = Errno(rawValue: ETIMEDOUT)
    /// `ECONNREFUSED`: nothing listens (a stale Unix socket file).
    public static let connectionRefused = Errno(rawValue: ECONNREFUSED)
}
