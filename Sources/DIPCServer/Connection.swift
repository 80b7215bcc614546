import DIPCCore
import DIPCProtocol
import Glibc
import Logging

/// One client connection, served by its own thread: decodes requests from packets,
/// runs them against the store, and sends replies in request order.
///
/// A write's data is received completely before the mailbox is locked; a read copies
/// out under the lock and sends afterwards; no lock is held during socket I/O.
final class Connection: @unchecked Sendable {
    /// The client's bytes, plain or TLS.
    private let stream: any ConnectionStream
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
    /// Bytes of the server's staging budget this connection holds for the request whose
    /// data it is receiving (0 when none); see `admitStagedData`.
    @exclusivity(unchecked) private var staged = 0
    /// With `--metrics`: when (monotonic nanoseconds) the last packet arrived, so the
    /// latest request's last byte; 0 without (no clock is read).
    @exclusivity(unchecked) private var lastArrival: Int64 = 0
    /// A plain socket's idle wait without `poll` (nil with TLS); see `IdleReceivers`.
    @exclusivity(unchecked) private var idleReceiver: IdleReceiver?
    private var store: any MailboxStore { server.store }
    private var packetSize: Int { server.configuration.packetSize }

    /// Serves `stream` (set up: socket options, TLS state); closes it when done.
    init(stream: any ConnectionStream, server: Server) {
        self.stream = stream
        self.server = server
        let geometry = server.store.geometry
        decoder = RequestDecoder(mailboxes: geometry.mailboxes, mailboxSize: geometry.mailboxSize,
                                 requiresAuthentication: server.access.secret != nil,
                                 requiresStagingAdmission: true)
        // One packet, but never more than the largest request could need; the pages are
        // touched only as data arrives.
        let bufferSize = min(server.configuration.packetSize, geometry.mailboxSize + RequestDecoder.maximumHeaderLength)
        receiveBuffer = [UInt8](unsafeUninitializedCapacity: bufferSize) { _, count in count = bufferSize }
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
        // The TLS handshake, on this thread, cut by --io-timeout or a stop.
        guard stream.open(deadline: monotonicSeconds() + Double(server.configuration.ioTimeoutSeconds),
                          stopSignalFD: server.stopSignalFD) else {
            server.connectionEnded()
            stream.close(lingeringWith: nil)
            return
        }
        if stream is PlainSocketStream { idleReceiver = server.idleReceivers.register(stream.fd) }
        let next = serve()
        if let idleReceiver { server.idleReceivers.unregister(idleReceiver) }  // before the descriptor is closed
        releaseStagedData()
        if next != .drop { _ = flush() }
        // The lingering close is the closer thread's, so this thread ends now and the
        // client's slot is free at once for it to reconnect.
        stream.close(lingeringWith: next == .drop ? nil : server.lingeringCloser)
        server.connectionEnded()
    }

    private func serve() -> Next {
        while true {
            while let result = decoder.next() {
                let next: Next
                switch result {
                case let .failure(error):
                    next = fail(error)
                case let .request(request):
                    next = server.metrics == nil ? execute(request) : executeMeasured(request)
                }
                releaseStagedData()  // the result ends the request that held it
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
            if let bytes = decoder.stagingAwaited {
                if let next = admitStagedData(bytes) { return next }
                continue
            }
            if let idleReceiver, decoder.isIdle {
                // The next request in one blocking recv: no poll (see IdleReceivers).
                switch receiveBuffer.withUnsafeMutableBytes({ idleReceiver.receive(into: $0) }) {
                case let .received(count):
                    server.statistics.bytesIn.add(count)
                    if server.metrics != nil { lastArrival = monotonicNanoseconds() }
                    receiveBuffer.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    continue
                case .peerGone:
                    return .drop
                case .stopping:
                    return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
                }
            }
            if idleReceiver?.readSideShutDown == true {
                // The stop shut the socket's reading side as this request began to
                // arrive: the rest cannot be waited for; it is dropped unapplied.
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
                count = try receiveBuffer.withUnsafeMutableBytes { try stream.receive(into: $0) }
            } catch let error as SystemError where error.errno == .wouldBlock {
                continue  // a spurious wake-up: wait again
            } catch {
                return .drop  // reset: the peer is gone
            }
            if count == 0 { return .drop }  // peer closed: a partial request is dropped unapplied
            server.statistics.bytesIn.add(count)
            if server.metrics != nil { lastArrival = monotonicNanoseconds() }
            receiveBuffer.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
    }

    private enum InputWait { case readable, timedOut, stopping }

    /// Waits for bytes. Idle connections wait without limit until a stop begins;
    /// a started request waits at most --io-timeout (and not past the stop deadline).
    private func waitForInput() -> InputWait {
        if stream.hasBufferedInput { return .readable }
        let idle = decoder.isIdle
        var limit: Double = idle ? .infinity : Double(server.configuration.ioTimeoutSeconds)
        let stopping = server.isStopping
        if stopping { limit = min(limit, server.stopDeadline - monotonicSeconds()) }
        // An idle wait has no deadline: no clock reads on the request path.
        let deadline = limit.isInfinite ? limit : monotonicSeconds() + limit
        while true {
            // A tuple, not an array: no allocation per wait.
            var fds = (pollfd(fd: stream.fd, events: Int16(POLLIN), revents: 0),
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

    /// Reserves `bytes` of the staging budget for the request whose header was just
    /// decoded, before any of its data is read: the socket is not read meanwhile and no
    /// --io-timeout runs (SPEC §3 "Resources"). Returns nil once admitted, or what to do
    /// when the wait is given up: the peer closed, or the server's stop deadline passed.
    private func admitStagedData(_ bytes: Int) -> Next? {
        let admitted = server.stagingBudget.reserve(bytes) { [fd = stream.fd, server] in
            (server.isStopping && monotonicSeconds() > server.stopDeadline)
                || SocketIO.peerHasGone(fd, countingHalfClose: false)
        }
        guard admitted else {
            if server.isStopping {
                return fail(ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
            }
            return .drop
        }
        staged = bytes
        decoder.admitStaging()
        return nil
    }

    private func releaseStagedData() {
        server.stagingBudget.release(staged)
        staged = 0
    }

    private func fail(_ error: ProtocolError) -> Next {
        server.statistics.errors.add(1)
        server.metrics?.errorSent(error.code)
        outgoing.append(contentsOf: error.encoded)
        return error.closesConnection ? .close : .keepOpen
    }

    private func flush() -> Bool {
        guard !outgoing.isEmpty else { return true }
        let ok = outgoing.withUnsafeBytes { stream.sendAll($0, packetSize: packetSize) }
        if ok { server.statistics.bytesOut.add(outgoing.count) }
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= 1 << 20)
        return ok
    }

    // MARK: requests

    /// `execute` for `--metrics`: counts the request by kind, records the time from its
    /// last byte's arrival to its reply, and counts it as waiting while it may wait.
    private func executeMeasured(_ request: Request) -> Next {
        guard let metrics = server.metrics else { return execute(request) }
        let kind = ServerMetrics.RequestKind(request)
        let waiting = request.mayWait ? metrics.waitingGauge(kind) : nil
        waiting?.increment()
        let next = execute(request)
        waiting?.decrement()
        metrics.requestAnswered(kind, nanoseconds: monotonicNanoseconds() - lastArrival)
        return next
    }

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
            server.logger.error("backend failure", metadata: ["error": "\(error)"])
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
        case let .authenticate(token):
            return authenticate(token)
        }
        return .keepOpen
    }

    /// `a TOKEN` (SPEC §2): `ok` for the server's token; a wrong one closes. The token
    /// is never logged.
    private func authenticate(_ token: [UInt8]) -> Next {
        guard let secret = server.access.secret else { return fail(.noTokenRequired) }
        guard secret.accepts(token) else { return fail(.wrongToken) }
        decoder.authenticated()
        outgoing.append(contentsOf: Reply.okay)
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
        MailboxWait(milliseconds: waitMilliseconds) { [fd = stream.fd, server] in
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
        case .read, .write, .quit, .info, .stats, .authenticate: return false
        }
    }
}
