import DIPCCore

extension Server {
    /// The TLS context for connections accepted on `listener`: the server's, on TCP
    /// listeners only (a Unix socket never speaks TLS).
    func tlsContext(for listener: ListeningSocket) -> TLSServerContext? {
        listener.isUnixDomain ? nil : access.tls
    }

    /// Longest handshake a turned-away TLS client gets before it is simply closed.
    static let rejectionHandshakeSeconds = 2.0

    /// Turned-away TLS clients answered at once, at most (each holds a thread for at
    /// most `rejectionHandshakeSeconds`); more are simply closed (SPEC §3 "Resources").
    static let maximumTLSRejections = 4

    /// Answers `bytes` (an `err busy` or `err shutdown`) inside TLS when the handshake
    /// completes promptly, then closes; else closes without a word (SPEC §2). Runs on
    /// a short-lived thread of its own; the socket ends with `closer`.
    static func rejectOverTLS(_ fd: Int32, _ bytes: [UInt8], context: TLSServerContext, ioTimeoutSeconds: Int, closer: LingeringCloser) {
        guard let stream = try? TLSSocketStream(fd: fd, context: context, ioTimeoutSeconds: ioTimeoutSeconds) else {
            closeDescriptor(fd)
            return
        }
        let deadline = monotonicSeconds() + min(rejectionHandshakeSeconds, Double(ioTimeoutSeconds))
        guard stream.open(deadline: deadline, stopSignalFD: -1) else {
            stream.close(lingeringWith: nil)
            return
        }
        let sent = bytes.withUnsafeBytes { stream.sendAll($0, packetSize: $0.count) }
        stream.close(lingeringWith: sent ? closer : nil)
    }
}
