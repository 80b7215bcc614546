import DIPCCore
import DIPCProtocol
import Glibc

/// One client connection, served by its own thread: decodes requests from packets,
/// runs them against the store, and sends replies in request order.
///
/// A write's data is received completely before the mailbox is locked; a read copies
/// out under the lock and sends afterwards; no lock is held during socket I/O.
final class Connection: @unchecked Sendable {
    private let fd: Int32
    private let server: Server
    // Only this connection's thread touches the mutable state below, so the runtime's
    // exclusivity checks (about a quarter of the server's user-space instructions per
    // request under callgrind, see docs/PERFORMANCE.md) are switched off for it.
    @exclusivity(unchecked) private var decoder: RequestDecoder
    @exclusivity(unchecked) private var receiveBuffer: [UInt8]
    /// Replies not yet sent; flushed before any blocking wait and when a packet is full.
    @exclusivity(unchecked) private var outgoing: [UInt8] = []
    /// Reused for values copied out of the store.
    @exclusivity(unchecked) private var value: [UInt8] = []
    private var store: any MailboxStore { server.store }
    private var packetSize: Int { server.configuration.packetSize }

    /// Takes over `fd` only on success; on failure the caller still owns (and closes) it.
    /// Throws when the socket options it depends on cannot be set: without the send
    /// timeout a stalled client could hold its thread forever.
    init(fd: Int32, server: Server) throws {
        self.fd = fd
        self.server = server
        let geometry = server.store.geometry
        decoder = RequestDecoder(mailboxes: geometry.mailboxes, mailboxSize: geometry.mailboxSize)
        // One packet, but never more than the largest request could need; the pages are
        // touched only as data arrives.
        let bufferSize = min(server.configuration.packetSize, geometry.mailboxSize + RequestDecoder.maximumHeaderLength)
        receiveBuffer = [UInt8](unsafeUninitializedCapacity: bufferSize) { _, count in count = bufferSize }
        var one: Int32 = 1
        try systemCall("setsockopt(TCP_NODELAY)") {
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        var timeout = timeval(tv_sec: server.configuration.ioTimeoutSeconds, tv_usec: 0)
        try systemCall("setsockopt(SO_SNDTIMEO)") {
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    /// What the connection does after a request.
    private enum Next {
        case keepOpen
        /// Send what is queued, then close (the peer may still be sending).
        case close
        /// The peer is gone: close without another word.
        case drop
    }

    func run() {
        let next = serve()
        if next != .drop { _ = flush() }
        // The client's slot is free before the lingering close, so it can reconnect at once.
        server.connectionEnded()
        if next == .drop { closeDescriptor(fd) } else { SocketIO.closeGracefully(fd) }
    }

    private func serve() -> Next {
        while true {
            while let result = decoder.next() {
                let next: Next
                switch result {
                case let .failure(error):
                    next = fail(error)
                case let .request(request):
                    next = execute(request)
                }
                if next != .keepOpen { return next }
                if outgoing.count >= receiveBuffer.count, !flush() { return .drop }
                if server.isStopping && monotonicSeconds() > server.stopDeadline {
                    return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
                }
            }
            if !flush() { return .drop }
            if server.isStopping && decoder.isIdle {
                return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
            }
            switch waitForInput() {
            case .readable: break
            case .timedOut:
                return fail(ProtocolError(code: .timeout, message: "request stalled for \(server.configuration.ioTimeoutSeconds) s (--io-timeout)", closesConnection: true))
            case .stopping:
                return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
            }
            let count: Int
            do {
                count = try receiveBuffer.withUnsafeMutableBytes { raw in
                    try systemCall("recv") { recv(fd, raw.baseAddress, raw.count, 0) }
                }
            } catch let error as SystemError where error.errno == .wouldBlock {
                continue  // a spurious wake-up: wait again
            } catch {
                return .drop  // reset: the peer is gone
            }
            if count == 0 { return .drop }  // peer closed: a partial request is dropped unapplied
            server.statistics.bytesIn.add(count)
            receiveBuffer.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }

    private enum InputWait { case readable, timedOut, stopping }

    /// Waits for bytes. Idle connections wait without limit until a stop begins;
    /// a started request waits at most --io-timeout (and not past the stop deadline).
    private func waitForInput() -> InputWait {
        let idle = decoder.isIdle
        var limit: Double = idle ? .infinity : Double(server.configuration.ioTimeoutSeconds)
        let stopping = server.isStopping
        if stopping { limit = min(limit, server.stopDeadline - monotonicSeconds()) }
        // An idle wait has no deadline: no clock reads on the request path.
        let deadline = limit.isInfinite ? limit : monotonicSeconds() + limit
        while true {
            // A tuple, not an array: no allocation per wait.
            var fds = (pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: server.stopSignalFD, events: Int16(POLLIN), revents: 0))
            if !deadline.isInfinite && deadline - monotonicSeconds() <= 0 { return stopping ? .stopping : .timedOut }
            // While stopping, the stop pipe stays readable: watch only the socket.
            let ready: Int32
            do {
                ready = try withUnsafeMutablePointer(to: &fds) { pointer in
                    try pointer.withMemoryRebound(to: pollfd.self, capacity: 2) { fds in
                        try systemCall("poll") { poll(fds, stopping ? 1 : 2, SocketIO.pollTimeout(until: deadline)) }
                    }
                }
            } catch {
                return .readable  // let recv report the error
            }
            if ready == 0 { continue }
            if fds.0.revents != 0 { return .readable }
            if fds.1.revents != 0 {
                if idle { return .stopping }
                return waitForInput()  // finish the request in flight, within the grace period
            }
        }
    }

    private func fail(_ error: ProtocolError) -> Next {
        server.statistics.errors.add(1)
        outgoing.append(contentsOf: error.encoded)
        return error.closesConnection ? .close : .keepOpen
    }

    private func flush() -> Bool {
        guard !outgoing.isEmpty else { return true }
        let ok = outgoing.withUnsafeBytes { SocketIO.sendAll(fd, $0, packetSize: packetSize) }
        if ok { server.statistics.bytesOut.add(outgoing.count) }
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
        return ok
    }

    // MARK: requests

    private func execute(_ request: Request) -> Next {
        // Earlier replies go out before a request that may wait, and outside the store.
        if request.mayWait, !flush() { return .drop }
        do {
            return try server.withStore { try perform(request) }
        } catch is Server.StoreClosed {
            return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
        } catch let StoreError.unreachable(reason) {
            return fail(ProtocolError(code: .unavailable, message: reason, closesConnection: false))
        } catch {
            return fail(ProtocolError(code: .internal, message: "backend \(server.configuration.backendName): \(error)", closesConnection: false))
        }
    }

    /// Runs one request against the store and queues its reply.
    private func perform(_ request: Request) throws -> Next {
        switch request {
        case let .read(mailbox):
            let version = try store.read(mailbox, into: &value)
            sendValue(version: version)
            server.statistics.reads.add(1)
        case let .write(mailbox, data):
            let version = try data.withUnsafeBytes { try store.write(mailbox, $0) }
            Reply.appendVersion(version, to: &outgoing)
            server.statistics.writes.add(1)
        case let .watch(mailbox, afterVersion, waitMilliseconds):
            return try watch(mailbox, after: afterVersion, waitMilliseconds: waitMilliseconds)
        case let .push(mailbox, data, waitMilliseconds):
            return try push(mailbox, data, waitMilliseconds: waitMilliseconds)
        case let .consume(mailbox, waitMilliseconds):
            return try consume(mailbox, waitMilliseconds: waitMilliseconds)
        case .quit:
            outgoing.append(contentsOf: Reply.bye)
            return .close
        case .info:
            outgoing.append(contentsOf: Reply.keyValues(server.infoPairs(), prefix: "dipc/1"))
        case .stats:
            // `queued`: this server's `c`/`p` requests now in a mailbox's waiting line.
            outgoing.append(contentsOf: Reply.keyValues(server.statistics.snapshot() + [("queued", String(store.describe().queuedRequests))]))
        }
        return .keepOpen
    }

    private func sendValue(version: UInt64) {
        Reply.appendValue(length: value.count, version: version, to: &outgoing)
        outgoing.append(contentsOf: value)
    }

    /// How long a request may wait, and when it gives up: when the server stops or the
    /// client is gone. `changesMailbox`: the request pushes or takes a message, so a
    /// client that may be gone (even only half-closed) must not be served: its change
    /// would be made for nobody, and a client that disconnects while waiting changes
    /// nothing (SPEC §2).
    private func wait(_ waitMilliseconds: Int, changesMailbox: Bool = false) -> MailboxWait {
        MailboxWait(milliseconds: waitMilliseconds) { [fd, server] in
            server.isStopping || SocketIO.peerHasGone(fd, countingHalfClose: changesMailbox)
        }
    }

    private func abandoned() -> Next {
        if server.isStopping {
            return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
        }
        return .drop
    }

    private func watch(_ mailbox: Int, after: UInt64, waitMilliseconds: Int) throws -> Next {
        let outcome = try store.waitForChange(of: mailbox, after: after, waiting: wait(waitMilliseconds))
        if case .abandoned = outcome { return abandoned() }
        let version = try store.read(mailbox, into: &value)
        sendValue(version: version)
        server.statistics.reads.add(1)
        return .keepOpen
    }

    private func push(_ mailbox: Int, _ data: [UInt8], waitMilliseconds: Int) throws -> Next {
        let outcome = try data.withUnsafeBytes {
            try store.push(mailbox, $0, waiting: wait(waitMilliseconds, changesMailbox: true))
        }
        switch outcome {
        case let .done(version):
            Reply.appendVersion(version, to: &outgoing)
            server.statistics.pushes.add(1)
            return .keepOpen
        case .timedOut:
            return fail(ProtocolError(code: .full, message: "mailbox \(mailbox) has no room for \(data.count) bytes", closesConnection: false))
        case .abandoned:
            return abandoned()
        }
    }

    private func consume(_ mailbox: Int, waitMilliseconds: Int) throws -> Next {
        let outcome = try store.take(mailbox, into: &value, waiting: wait(waitMilliseconds, changesMailbox: true))
        switch outcome {
        case let .done(version):
            sendValue(version: version)
            server.statistics.takes.add(1)
            return .keepOpen
        case .timedOut:
            return fail(ProtocolError(code: .empty, message: "mailbox \(mailbox) has no message", closesConnection: false))
        case .abandoned:
            return abandoned()
        }
    }
}

extension Request {
    /// Whether the request may wait for a change of its mailbox.
    var mayWait: Bool {
        switch self {
        case let .watch(_, _, wait), let .push(_, _, wait), let .consume(_, wait): return wait > 0
        case .read, .write, .quit, .info, .stats: return false
        }
    }
}
