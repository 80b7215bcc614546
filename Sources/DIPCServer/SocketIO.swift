import DIPCCore
import Glibc

/// Socket helpers shared by the connection threads.
enum SocketIO {
    /// `POLLRDHUP` (Linux): the peer shut down its writing side. Glibc's module does not export it.
    static let pollReadHangUp: Int32 = 0x2000

    /// Sends all of `bytes` in pieces of at most `packetSize`. Returns false when the
    /// peer is gone or stalled past the socket's send timeout.
    static func sendAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, packetSize: Int) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let piece = min(packetSize, bytes.count - offset)
            let sent = send(fd, bytes.baseAddress! + offset, piece, Int32(MSG_NOSIGNAL))
            if sent < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += sent
        }
        return true
    }

    /// Whether the peer is gone, without consuming input. With `countingHalfClose`,
    /// a peer that only shut down its sending side counts as gone too (TCP cannot tell
    /// that from a full close until something is sent).
    static func peerHasGone(_ fd: Int32, countingHalfClose: Bool) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(pollReadHangUp), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return false }
        let gone = Int32(POLLHUP) | Int32(POLLERR) | (countingHalfClose ? pollReadHangUp : 0)
        return Int32(pfd.revents) & gone != 0
    }

    /// Closes after a final reply so that the reply is not lost to a reset: sends FIN,
    /// discards what the peer still sends for up to `lingerSeconds`, then closes.
    static func closeGracefully(_ fd: Int32, lingerSeconds: Double = ServerTimeouts.standard.lingeringCloseSeconds) {
        shutdown(fd, Int32(SHUT_WR))
        let deadline = monotonicSeconds() + lingerSeconds
        var scratch = [UInt8](repeating: 0, count: 4096)
        var discarded = 0
        while discarded < 1 << 20 {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { break }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(remaining * 1000) + 1)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { break }
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { break }
            discarded += n
        }
        close(fd)
    }
}
