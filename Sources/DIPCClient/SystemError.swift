import Glibc

// DIPCClient does not depend on DIPCCore, so it keeps its own copy of the system call
// wrapper, in the same shape as DIPCCore's `systemCall` / `SystemError`: EINTR is
// retried, any other failure is thrown with the call's name and errno, and callers
// turn it into a `DIPCClientError` (whose wording the client's users see).

/// A failed system call: the call's name and the `errno` it left.
struct SystemError: Error {
    let call: String
    let errno: Int32
}

/// Runs `body`, a call that returns -1 and sets `errno` on failure, retrying on
/// `EINTR`; returns its result, or throws `SystemError(call:errno:)`.
@discardableResult
func systemCall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Glibc.errno
        if code == EINTR { continue }
        throw SystemError(call: call(), errno: code)
    }
}

/// The system's text for an errno value, e.g. "Connection refused".
func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// A `DIPCClientError.connection` naming the failing call and carrying `strerror(code)`.
func connectionError(_ call: String, errno code: Int32) -> DIPCClientError {
    .connection("\(call): \(errnoText(code))")
}
