/// The `CODE` of an `err CODE MESSAGE` reply (SPEC §2).
public enum ErrorCode: String, Sendable, CaseIterable {
    case syntax, range, size, busy, timeout, shutdown, full, empty, `internal`, auth, unavailable
}

/// One protocol error: what the server answers with `err CODE MESSAGE\n`, and whether it
/// closes the connection afterwards.
public struct ProtocolError: Error, Equatable, Sendable {
    public var code: ErrorCode
    /// Human-readable, one line (a `\n` or `\r` in it is sent as a space).
    public var message: String
    /// The server closes the connection after sending this error.
    public var closesConnection: Bool

    public init(code: ErrorCode, message: String, closesConnection: Bool) {
        self.code = code
        self.message = message
        self.closesConnection = closesConnection
    }

    /// `err CODE MESSAGE\n` (`err CODE\n` when the message is empty).
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(6 + code.rawValue.utf8.count + message.utf8.count)
        out.append(contentsOf: "err ".utf8)
        out.append(contentsOf: code.rawValue.utf8)
        if !message.isEmpty {
            out.append(UInt8(ascii: " "))
            for byte in message.utf8 {
                out.append(byte == 0x0A || byte == 0x0D ? UInt8(ascii: " ") : byte)
            }
        }
        out.append(0x0A)
        return out
    }
}

extension ProtocolError {
    /// Any request but `a` and `q` before a successful `a` on a server with `--auth-file`.
    public static let authenticationRequired = ProtocolError(
        code: .auth, message: "authentication required", closesConnection: false)
    /// `a` with a token that is not the server's: the connection closes.
    public static let wrongToken = ProtocolError(code: .auth, message: "wrong token", closesConnection: true)
    /// `a` on a server without `--auth-file`.
    public static let noTokenRequired = ProtocolError(
        code: .auth, message: "no token is required", closesConnection: false)
}

extension ProtocolError: CustomStringConvertible {
    public var description: String { "err \(code.rawValue) \(message)" }
}
