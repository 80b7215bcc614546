import Glibc

/// A failed system call: the call's name and the `errno` it left.
///
/// `description` reads like `shmget: No space left on device (errno 28)`, so a
/// message that reaches a user or a log names both the call and the cause.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The system call or library function that failed, e.g. `"shmget"`.
    public let call: String
    /// The `errno` value the call reported.
    public let errno: Int32

    public init(_ call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    /// Captures the current `errno` for `call`.
    public static func last(_ call: String) -> SystemError {
        SystemError(call, errno: Glibc.errno)
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs `body` (a system call returning -1 on failure), retrying on `EINTR`, and
/// throws a `SystemError` naming `call` on any other failure.
@discardableResult
public func systemCall<T: FixedWidthInteger>(_ call: String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call, errno: code)
    }
}
