import Glibc

/// A failed system call: the call's name and the `errno` it left.
///
/// `description` reads like `shmget: No space left on device (errno 28)`, so a
/// message that reaches a user or a log names both the call and the cause.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The system call or library function that failed, e.g. `"shmget"`.
    public let call: String
    /// The `errno` value the call reported.
    public let errno: Errno

    public init(_ call: String, errno: Errno) {
        self.call = call
        self.errno = errno
    }

    /// For calls that return their error number (pthread_*, posix_spawn, posix_fallocate).
    public init(_ call: String, errno code: Int32) {
        self.init(call, errno: Errno(rawValue: code))
    }

    /// Captures the current `errno` for `call`.
    public static func last(_ call: String) -> SystemError {
        SystemError(call, errno: .current)
    }

    public var description: String {
        "\(call): \(errno) (errno \(errno.rawValue))"
    }
}
