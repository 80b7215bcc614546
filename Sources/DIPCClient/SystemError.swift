import Glibc

/// The system's text for an errno value, e.g. "Connection refused".
func errnoText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

/// A `DIPCClientError.connection` naming the failing call and carrying `strerror(code)`.
func connectionError(_ call: String, errno code: Int32) -> DIPCClientError {
    .connection("\(call): \(errnoText(code))")
}
