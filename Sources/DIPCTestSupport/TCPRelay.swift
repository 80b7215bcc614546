import DIPCCore
import Foundation
import Glibc

/// A TCP relay on a loopback port to a target port, whose link can be cut and healed:
/// a partition between one client (a dipc server) and a service (etcd) for tests.
///
/// `cut()` closes the listening socket and every relayed connection, so that the client
/// meets refused connections; `heal()` listens on the same port again. `stop()` (also
/// `deinit`) ends everything and joins its threads.
public final class TCPRelay: @unchecked Sendable {
    /// The relay's port: clients connect here.
    public let port: Int
    private let target: Int
    private let lock = NSLock()
    private var listener: Int32 = -1
    private var connections: Set<Int32> = []
    private var stopped = false
    private var acceptThread: Thread?
    private let acceptDone = DispatchSemaphore(value: 0)

    /// Relays a free loopback port to `127.0.0.1:targetPort`.
    public init(to targetPort: Int) throws {
        target = targetPort
        port = try LoopbackPort.free()
        try listen()
    }

    deinit { stop() }

    /// Refuses new connections and drops every relayed one.
    public func cut() {
        lock.lock()
        let fd = listener
        listener = -1
        let open = connections
        lock.unlock()
        if fd >= 0 { close(fd) }
        for c in open { shutdown(c, Int32(SHUT_RDWR)) }
        if fd >= 0 { acceptDone.wait() }
    }

    /// Accepts and relays again.
    public func heal() throws {
        let listening = lock.withLock { listener >= 0 }
        if !listening { try listen() }
    }

    /// Ends the relay for good.
    public func stop() {
        lock.withLock { stopped = true }
        cut()
    }

    private func listen() throws {
        let fd = try LoopbackPort.listen(port: port).fd
        lock.withLock { listener = fd }
        let thread = Thread { [self] in
            acceptLoop(fd)
            acceptDone.signal()
        }
        thread.start()
    }

    private func acceptLoop(_ fd: Int32) {
        while true {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            let current = lock.withLock { listener == fd && !stopped }
            guard current else { return }
            guard ready > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = Self.loopback(target)
            let connected = upstream >= 0 && withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
            guard connected else {
                close(client)
                if upstream >= 0 { close(upstream) }
                continue
            }
            lock.withLock {
                connections.insert(client)
                connections.insert(upstream)
            }
            let pair = Pair()
            pump(from: client, to: upstream, pair)
            pump(from: upstream, to: client, pair)
        }
    }

    /// Copies bytes one way until either side ends; then shuts both down, and the last
    /// of the pair's two pumps closes them.
    private func pump(from source: Int32, to sink: Int32, _ pair: Pair) {
        Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(source, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                var sent = 0
                while sent < n {
                    let m = buffer.withUnsafeBytes { send(sink, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                    if m <= 0 { break }
                    sent += m
                }
                if sent < n { break }
            }
            shutdown(source, Int32(SHUT_RDWR))
            shutdown(sink, Int32(SHUT_RDWR))
            if pair.finishOne() {
                lock.withLock {
                    connections.remove(source)
                    connections.remove(sink)
                }
                close(source)
                close(sink)
            }
        }.start()
    }

    /// The two pumps of one relayed connection: the second to finish closes it.
    private final class Pair: @unchecked Sendable {
        private let lock = NSLock()
        private var running = 2
        func finishOne() -> Bool { lock.withLock { running -= 1; return running == 0 } }
    }

    private static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
