import CDIPCOpenSSL
import DIPCCore
import Glibc

/// A TLS connection over a non-blocking TCP socket. Every wait is a `poll` with a
/// deadline, so `--io-timeout` bounds the handshake and every stalled send, and a
/// partial TLS record never blocks the connection's thread: `receive` reports
/// `.wouldBlock` and `Connection` waits as for a plain socket. Read-ahead is on, so one
/// `read` takes a whole record (header and body) and whatever else has arrived; input
/// OpenSSL holds counts as buffered until an `SSL_read` finds it is only part of a
/// record (then the rest must come from the socket).
final class TLSSocketStream: ConnectionStream {
    let fd: Int32
    private let ssl: OpaquePointer
    private let ioTimeoutSeconds: Int
    private var closed = false
    /// The last `SSL_read` wanted more from the socket than OpenSSL holds.
    private var starved = false

    /// Takes over `fd` only on success.
    init(fd: Int32, context: TLSServerContext, ioTimeoutSeconds: Int) throws {
        try PlainSocketStream.configure(fd, isTCP: true, sendTimeoutSeconds: ioTimeoutSeconds)
        let flags = try systemCall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
        try systemCall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        guard let ssl = SSL_new(context.context) else {
            throw SystemError("SSL_new: \(TLSError.drain())", errno: ENOMEM)
        }
        guard SSL_set_fd(ssl, fd) == 1 else {
            SSL_free(ssl)
            throw SystemError("SSL_set_fd: \(TLSError.drain())", errno: EINVAL)
        }
        SSL_set_read_ahead(ssl, 1)
        self.fd = fd
        self.ssl = ssl
        self.ioTimeoutSeconds = ioTimeoutSeconds
    }

    deinit { if !closed { close(lingeringWith: nil) } }

    /// The server side of the handshake; false when it fails (a plaintext client, no
    /// acceptable client certificate, TLS before 1.2), stalls past `deadline`, or the
    /// server stops meanwhile (`stopSignalFD` readable).
    func open(deadline: Double, stopSignalFD: Int32) -> Bool {
        while true {
            let result = SSL_accept(ssl)
            if result == 1 { return true }
            guard wait(after: result, until: deadline, stopSignalFD: stopSignalFD) else {
                TLSError.clear()
                return false
            }
        }
    }

    var hasBufferedInput: Bool { SSL_pending(ssl) > 0 || (!starved && SSL_has_pending(ssl) == 1) }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
            if result > 0 {
                starved = false
                return Int(result)
            }
            switch SSL_get_error(ssl, result) {
            case SSL_ERROR_WANT_READ:
                starved = true
                throw SystemError("SSL_read", errno: EAGAIN)
            case SSL_ERROR_WANT_WRITE:
                // A TLS 1.3 key update to answer: wait until it can be sent, then read on.
                guard waitFor(Int16(POLLOUT), until: monotonicSeconds() + Double(ioTimeoutSeconds)) else {
                    throw SystemError("SSL_read", errno: ETIMEDOUT)
                }
            case SSL_ERROR_ZERO_RETURN:
                return 0  // close_notify: the peer closed
            default:
                TLSError.clear()
                throw SystemError("SSL_read", errno: ECONNRESET)
            }
        }
    }

    func sendAll(_ bytes: UnsafeRawBufferPointer, packetSize: Int) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let piece = Int32(clamping: min(packetSize, bytes.count - offset))
            let result = SSL_write(ssl, bytes.baseAddress! + offset, piece)
            if result > 0 {
                offset += Int(result)
                continue
            }
            // As SO_SNDTIMEO for a plain socket: each stalled wait gets --io-timeout.
            guard wait(after: result, until: monotonicSeconds() + Double(ioTimeoutSeconds)) else {
                TLSError.clear()
                return false
            }
        }
        return true
    }

    func close(lingeringWith closer: LingeringCloser?) {
        guard !closed else { return }
        closed = true
        if let closer {
            // close_notify, without waiting for the peer's: best effort on a closing connection.
            ignoringFailure("a peer that is gone needs no close_notify") { SSL_shutdown(ssl) }
            TLSError.clear()
            SSL_free(ssl)
            closer.close(fd)
        } else {
            SSL_free(ssl)
            closeDescriptor(fd)
        }
    }

    /// After an OpenSSL call returned `result` <= 0: waits for what it wants (readable
    /// or writable) until `deadline`. False for any other error, or at the deadline.
    private func wait(after result: Int32, until deadline: Double, stopSignalFD: Int32 = -1) -> Bool {
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return waitFor(Int16(POLLIN), until: deadline, stopSignalFD: stopSignalFD)
        case SSL_ERROR_WANT_WRITE: return waitFor(Int16(POLLOUT), until: deadline, stopSignalFD: stopSignalFD)
        default: return false
        }
    }

    /// Polls the socket for `events` until `deadline`; false at the deadline, when it
    /// reports an error or hang-up, or when `stopSignalFD` (if not -1) is readable.
    private func waitFor(_ events: Int16, until deadline: Double, stopSignalFD: Int32 = -1) -> Bool {
        while true {
            if deadline - monotonicSeconds() <= 0 { return false }
            // A tuple, not an array: no allocation per wait. poll ignores a negative fd.
            var fds = (pollfd(fd: fd, events: events, revents: 0), pollfd(fd: stopSignalFD, events: Int16(POLLIN), revents: 0))
            let ready = withUnsafeMutablePointer(to: &fds) { pointer in
                pointer.withMemoryRebound(to: pollfd.self, capacity: 2) { fds in
                    try? systemCall("poll") { poll(fds, 2, SocketIO.pollTimeout(until: deadline)) }
                }
            }
            guard let ready else { return false }
            if ready == 0 { continue }
            if fds.1.revents != 0 { return false }
            // Readable with a hang-up still has bytes to read (the peer's last record).
            return fds.0.revents & events != 0
        }
    }
}
