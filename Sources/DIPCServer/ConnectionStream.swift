import DIPCCore
import Glibc

/// The bytes of one client connection, plain (`PlainSocketStream`) or TLS
/// (`TLSSocketStream`): `Connection` serves requests through this and never knows which.
/// Used by the connection's own thread only.
protocol ConnectionStream: AnyObject {
    /// The socket, for `poll` (readable, peer gone).
    var fd: Int32 { get }
    /// Runs before the first request (the TLS handshake) with `deadline` (monotonic
    /// seconds) as its limit, given up as soon as `stopSignalFD` (when not -1) is
    /// readable; false when the connection cannot be served.
    func open(deadline: Double, stopSignalFD: Int32) -> Bool
    /// Whether bytes were already received that `receive` returns without the socket
    /// becoming readable (TLS decrypts whole records): the caller must not poll first.
    var hasBufferedInput: Bool { get }
    /// Receives up to `buffer.count` bytes: the count, 0 when the peer closed. Throws
    /// `SystemError` with `.wouldBlock` when nothing is ready yet (wait, then call
    /// again), any other error when the peer is gone.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Sends all of `bytes` in pieces of at most `packetSize`. False when the peer is
    /// gone or stalled past `--io-timeout`.
    func sendAll(_ bytes: UnsafeRawBufferPointer, packetSize: Int) -> Bool
    /// Closes: after a final reply by handing the socket to `closer` (so the reply is
    /// not lost to a reset), or at once (`nil`: the peer is gone, or nothing was said).
    func close(lingeringWith closer: LingeringCloser?)
}

/// A plain socket: TCP (TCP_NODELAY) or Unix-domain, blocking, with SO_SNDTIMEO.
final class PlainSocketStream: ConnectionStream {
    let fd: Int32

    /// Takes over `fd` only on success. Throws when the options it depends on cannot
    /// be set: without the send timeout a stalled client could hold its thread forever.
    init(fd: Int32, isTCP: Bool, sendTimeoutSeconds: Int) throws {
        try Self.configure(fd, isTCP: isTCP, sendTimeoutSeconds: sendTimeoutSeconds)
        self.fd = fd
    }

    /// TCP_NODELAY (TCP only) and SO_SNDTIMEO.
    static func configure(_ fd: Int32, isTCP: Bool, sendTimeoutSeconds: Int) throws {
        if isTCP {
            var one: Int32 = 1
            try systemCall("setsockopt(TCP_NODELAY)") {
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        var timeout = timeval(tv_sec: sendTimeoutSeconds, tv_usec: 0)
        try systemCall("setsockopt(SO_SNDTIMEO)") {
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    func open(deadline: Double, stopSignalFD: Int32) -> Bool { true }

    var hasBufferedInput: Bool { false }

    func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try systemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    func sendAll(_ bytes: UnsafeRawBufferPointer, packetSize: Int) -> Bool {
        SocketIO.sendAll(fd, bytes, packetSize: packetSize)
    }

    func close(lingeringWith closer: LingeringCloser?) {
        if let closer { closer.close(fd) } else { closeDescriptor(fd) }
    }
}
