/// Everything a `DIPCConnection` call can throw.
///
/// - `server`: the server answered `err CODE MESSAGE`. The request was understood as
///   a request and refused; for the codes after which the server closes the
///   connection (`size`, `busy`, `timeout`, `shutdown`), the connection is closed
///   locally too.
/// - `connection`: the server could not be reached, the connection was closed, or a
///   socket call failed or timed out. The message names the failing call and carries
///   the system's error text. The connection is unusable afterwards.
/// - `protocolViolation`: the server's reply was not what the protocol allows for the
///   request. The connection is closed, since the byte stream can no longer be trusted.
public enum DIPCClientError: Error, CustomStringConvertible, Equatable, Sendable {
    case server(code: String, message: String)
    case connection(String)
    case protocolViolation(String)

    /// A one-line, human-readable reason (no trailing newline).
    public var description: String {
        switch self {
        case .server(let code, let message):
            return message.isEmpty ? "server error \(code)" : "server error \(code): \(message)"
        case .connection(let text):
            return text
        case .protocolViolation(let text):
            return "protocol violation: \(text)"
        }
    }
}
