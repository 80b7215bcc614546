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
            // Any failure (reset, EPIPE, EAGAIN after SO_SNDTIMEO) means the peer is lost.
            guard let sent = try? systemCall("send", { send(fd, bytes.baseAddress! + offset, piece, Int32(MSG_NOSIGNAL)) })
            else { return false }
            offset += sent
        }
        return true
    }

    /// The `poll` timeout for a wait until `deadline` (monotonic seconds): -1 for an
    /// infinite deadline, 0 once it has passed, else the milliseconds left rounded up
    /// (at most about 33 minutes; callers loop). Computed inside the `systemCall` body,
    /// so a retry after EINTR waits only for what is left.
    static func pollTimeout(until deadline: Double) -> Int32 {
        if deadline.isInfinite { return -1 }
        let remaining = deadline - monotonicSeconds()
        if remaining <= 0 { return 0 }
        return Int32(min(remaining * 1000, 2_000_000)) + 1
    }

    /// Whether the peer is gone, without consuming input. With `countingHalfClose`,
    /// a peer that only shut down its sending side counts as gone too (TCP cannot tell
    /// that from a full close until something is sent).
    static func peerHasGone(_ fd: Int32, countingHalfClose: Bool) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(pollReadHangUp), revents: 0)
        // A failed poll tells nothing: the peer counts as present, and the next send or
        // recv on the connection reports the real state.
        guard let ready = try? systemCall("poll", { poll(&pfd, 1, 0) }), ready > 0 else { return false }
        let gone = Int32(POLLHUP) | Int32(POLLERR) | (countingHalfClose ? pollReadHangUp : 0)
        return Int32(pfd.revents) & gone != 0
    }
}
