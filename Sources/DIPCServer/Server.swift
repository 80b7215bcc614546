import Atomics
import CDIPCShims
import DIPCCore
import DIPCProtocol
import Glibc
import Logging

/// A running DIPC server: one accept thread per listening socket, and one thread per
/// connection, serving the mailboxes of one `MailboxStore` through a `StoreGate`.
///
/// `start` begins accepting; `stop` stops accepting, answers idle connections
/// `err shutdown`, and lets requests in flight finish until the grace period ends.
/// The listeners, the store and the gate are the caller's: it opens them before, and
/// closes them after (the gate before the store is detached); see `ServerParts`.
public final class Server: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let store: any MailboxStore
    let logger: Logger
    let statistics = ServerStatistics()
    /// `--metrics`: what the connections record for the Prometheus page; nil without.
    let metrics: ServerMetrics?
    /// The token connections must present (and, with TLS, the TLS context).
    let access: ServerAccess
    /// Every listener gets its own accept loop (TCP today; TLS or a Unix socket would be more).
    private let listeners: [ListeningSocket]
    private let storeGate: StoreGate
    /// Readable once a stop has begun; TLS connections and requests in flight poll it
    /// (idle plain connections are woken through `idleReceivers`).
    let stopSignalFD: Int32
    private let stopSignalWriteFD: Int32
    private let stopping = ManagedAtomic<Bool>(false)
    /// Monotonic time after which requests in flight are cut short.
    private(set) var stopDeadline = Double.infinity
    private let activeConnections = ManagedAtomic<Int>(0)
    /// Threads answering a turned-away TLS client now (see `reject`).
    private let tlsRejectionsInFlight = ManagedAtomic<Int>(0)
    /// Closes every socket after its final reply, without a thread each.
    let lingeringCloser: LingeringCloser
    /// Memory for the data of writes and pushes still arriving (`--max-staging-mb`).
    let stagingBudget: StagingBudget
    /// One thread per connection, counted until it has exited.
    private let connectionThreads: ConnectionThreads
    private let runningAcceptLoops = ManagedAtomic<Int>(0)
    /// Plain connections waiting idle in a blocking recv, woken by `stop`.
    let idleReceivers = IdleReceivers()

    /// A server that will accept on `listener`, with a store gate of its own.
    /// The listener stays the caller's to close (after `stop`).
    public convenience init(configuration: ServerConfiguration, listener: ListeningSocket, store: any MailboxStore,
                            logger: Logger) throws {
        try self.init(configuration: configuration, listeners: [listener], store: store, storeGate: StoreGate(), logger: logger)
    }

    /// A server that will accept on every one of `listeners` (the caller's to close
    /// after `stop`) and enter `store` only through `storeGate`.
    init(configuration: ServerConfiguration, listeners: [ListeningSocket], store: any MailboxStore, storeGate: StoreGate,
         access: ServerAccess = .open, metrics: ServerMetrics? = nil, logger: Logger) throws {
        precondition(!listeners.isEmpty, "a server needs a listener")
        self.configuration = configuration
        self.metrics = metrics
        self.access = access
        self.store = store
        self.storeGate = storeGate
        self.logger = logger
        self.listeners = listeners
        stagingBudget = StagingBudget(capacity: StagingBudget.capacity(
            megabytes: configuration.maxStagingMegabytes, mailboxSize: store.geometry.mailboxSize))
        lingeringCloser = try LingeringCloser(lingerSeconds: configuration.timeouts.lingeringCloseSeconds)
        connectionThreads = try ConnectionThreads(limit: configuration.maxClients + ConnectionThreads.exitingAllowance,
                                                  processLimit: configuration.maxClients + ConnectionThreads.processAllowance)
        var fds: [Int32] = [0, 0]
        try systemCall("pipe2") { cdipc_pipe_cloexec(&fds) }
        stopSignalFD = fds[0]
        stopSignalWriteFD = fds[1]
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Starts one accept thread per listener. When one cannot be started, stops the
    /// ones already running (as `stop` does) and throws.
    public func start() throws {
        try lingeringCloser.start()
        for listener in listeners {
            runningAcceptLoops.wrappingIncrement(ordering: .acquiringAndReleasing)
            do {
                try startDetachedThread(name: "dipc-accept") { [self] in acceptLoop(listener) }
            } catch {
                runningAcceptLoops.wrappingDecrement(ordering: .acquiringAndReleasing)
                stop()
                throw error
            }
        }
    }

    private func acceptLoop(_ listener: ListeningSocket) {
        let listeningFD = listener.fd
        // Held open so that, out of descriptors, this loop can free one to turn a client away.
        var spareDescriptor = Server.openSpareDescriptor()
        var lastDescriptorWarning = -Double.infinity
        defer {
            if spareDescriptor >= 0 { closeDescriptor(spareDescriptor) }
            runningAcceptLoops.wrappingDecrement(ordering: .acquiringAndReleasing)
        }
        while true {
            let fd: Int32
            do {
                fd = try systemCall("accept") { cdipc_accept_cloexec(listeningFD) }
            } catch {
                if isStopping { return }
                switch (error as? SystemError)?.errno {
                case .connectionAborted, .protocolError:
                    continue  // that client gave up while queued
                case .tooManyOpenFiles, .tooManyOpenFilesInSystem:
                    if monotonicSeconds() - lastDescriptorWarning > 10 {
                        lastDescriptorWarning = monotonicSeconds()
                        logger.warning("out of file descriptors; turning clients away", metadata: ["error": "\(error)"])
                    }
                    turnAwayOneClient(listener, spareDescriptor: &spareDescriptor)
                    usleep(1_000)
                    continue
                case .noBufferSpace, .noMemory:
                    logger.warning("accept: out of memory, retrying", metadata: ["error": "\(error)"])
                    usleep(10_000)
                    continue
                default:
                    logger.error("accept failed", metadata: ["error": "\(error)"])
                    return
                }
            }
            if isStopping {
                reject(fd, ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true), from: listener)
                return
            }
            let active = activeConnections.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing)
            if active > configuration.maxClients {
                activeConnections.wrappingDecrement(ordering: .relaxed)
                statistics.rejected.add(1)
                reject(fd, ProtocolError(code: .busy, message: "server already has \(configuration.maxClients) clients (--max-clients)", closesConnection: true), from: listener)
                continue
            }
            statistics.accepted.add(1)
            statistics.connections.add(1)
            let stream: any ConnectionStream
            do {
                stream = try makeStream(fd, from: listener)
            } catch {
                // The socket is unusable (its options cannot be set): nothing can be sent on it.
                logger.error("cannot set up a connection", metadata: ["error": "\(error)"])
                connectionEnded()
                closeDescriptor(fd)
                continue
            }
            let connection = Connection(stream: stream, server: self)
            do {
                try connectionThreads.start { connection.run() }
            } catch {
                logger.error("cannot start a connection thread", metadata: ["error": "\(error)"])
                connectionEnded()
                // Nothing in clear on a TLS port: the client only sees the close.
                if tlsContext(for: listener) == nil {
                    Server.sendCourtesyReply(fd, ProtocolError(code: .busy, message: "server cannot start another thread", closesConnection: true).encoded)
                }
                stream.close(lingeringWith: nil)
            }
        }
    }

    /// The stream for an accepted socket: plain, or TLS on a TCP listener of a TLS server.
    /// Throws when the socket's options cannot be set; `fd` is then still the caller's.
    private func makeStream(_ fd: Int32, from listener: ListeningSocket) throws -> any ConnectionStream {
        if let tls = tlsContext(for: listener) {
            return try TLSSocketStream(fd: fd, context: tls, ioTimeoutSeconds: configuration.ioTimeoutSeconds)
        }
        return try PlainSocketStream(fd: fd, isTCP: !listener.isUnixDomain, sendTimeoutSeconds: configuration.ioTimeoutSeconds)
    }

    /// Out of descriptors: frees the spare one to accept the next client, answers it
    /// `err busy`, closes it, and takes a spare descriptor again.
    private func turnAwayOneClient(_ listener: ListeningSocket, spareDescriptor: inout Int32) {
        if spareDescriptor >= 0 { closeDescriptor(spareDescriptor) }
        // Failing here means the client that caused the shortage already left, or another
        // thread took the descriptor first: either way the loop simply carries on.
        if let turnedAway = try? systemCall("accept", { cdipc_accept_cloexec(listener.fd) }) {
            statistics.rejected.add(1)
            // Nothing in clear on a TLS port, and no descriptor to spare for a handshake.
            if tlsContext(for: listener) == nil {
                Server.sendCourtesyReply(turnedAway, ProtocolError(code: .busy, message: "server is out of file descriptors", closesConnection: true).encoded)
            }
            closeDescriptor(turnedAway)
        }
        spareDescriptor = Server.openSpareDescriptor()
    }

    /// A descriptor on /dev/null held in reserve, or -1 when none can be opened now (the
    /// server then lacks only this reserve: the next shortage turns nobody away).
    private static func openSpareDescriptor() -> Int32 {
        (try? systemCall("open(/dev/null)", { open("/dev/null", O_RDONLY | O_CLOEXEC) })) ?? -1
    }

    /// Sends `bytes` without waiting, to a client about to be closed. A failure is
    /// harmless: the client is turned away either way, and sees the connection close.
    private static func sendCourtesyReply(_ fd: Int32, _ bytes: [UInt8]) {
        ignoringFailure("the connection closes right after, reply or not") {
            bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        }
    }

    /// Sends `error` on a connection that will not be served, without waiting, and
    /// hands the socket to the lingering closer: no thread per rejected connection, so
    /// a connection flood costs the accept loop only a few system calls per client. On a
    /// TLS port the error goes inside TLS if the handshake completes promptly (SPEC §2),
    /// on one of at most `maximumTLSRejections` short-lived threads; beyond that the
    /// socket is simply closed.
    private func reject(_ fd: Int32, _ error: ProtocolError, from listener: ListeningSocket) {
        let bytes = error.encoded
        guard let tls = tlsContext(for: listener) else {
            Server.sendCourtesyReply(fd, bytes)
            lingeringCloser.close(fd)
            return
        }
        guard tlsRejectionsInFlight.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing) <= Server.maximumTLSRejections else {
            tlsRejectionsInFlight.wrappingDecrement(ordering: .relaxed)
            closeDescriptor(fd)
            return
        }
        let timeoutSeconds = configuration.ioTimeoutSeconds
        do {
            try startDetachedThread(name: "dipc-reject") { [self] in
                Server.rejectOverTLS(fd, bytes, context: tls, ioTimeoutSeconds: timeoutSeconds, closer: lingeringCloser)
                tlsRejectionsInFlight.wrappingDecrement(ordering: .releasing)
            }
        } catch {
            tlsRejectionsInFlight.wrappingDecrement(ordering: .relaxed)
            closeDescriptor(fd)
        }
    }

    /// Called by a connection thread when its connection is closed.
    func connectionEnded() {
        statistics.connections.add(-1)
        activeConnections.wrappingDecrement(ordering: .acquiringAndReleasing)
    }

    /// Stops the server: no new connections; idle ones get `err shutdown`; requests in
    /// flight may finish within the grace period. Returns once every connection and
    /// accept loop has ended or the grace period and the drain time have passed. The
    /// listeners are shut down (so their accept loops wake), not closed. Call once.
    public func stop() {
        let timeouts = configuration.timeouts
        stopDeadline = monotonicSeconds() + timeouts.stopGraceSeconds
        stopping.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        // The pipe is empty until now and written once, so the write cannot block or
        // fail but through a bug (a closed descriptor), which traps.
        do { try systemCall("write(stop pipe)") { write(stopSignalWriteFD, &byte, 1) } } catch { preconditionFailure("\(error)") }
        idleReceivers.wakeForStop()
        // Wakes the accept threads; a listener that is already shut down is fine.
        for listener in listeners {
            ignoringFailure("only wakes an accept thread, which also checks isStopping") {
                shutdown(listener.fd, Int32(SHUT_RDWR))
            }
        }
        while monotonicSeconds() < stopDeadline + timeouts.stopDrainSeconds {
            if activeConnections.load(ordering: .acquiring) == 0 && runningAcceptLoops.load(ordering: .acquiring) == 0 { break }
            usleep(5_000)
        }
        let left = activeConnections.load(ordering: .acquiring)
        if left > 0 { logger.warning("stopping with connections still open", metadata: ["connections": "\(left)"]) }
        connectionThreads.joinFinished()
        lingeringCloser.stop()
    }

    /// Thrown by `withStore` once the store gate is closed.
    typealias StoreClosed = StoreGate.Closed

    /// Runs `body`, which uses the store, through the store gate; throws `StoreClosed`
    /// once the gate is closing, so no thread touches the store after it is detached.
    func withStore<T>(_ body: () throws -> T) throws -> T {
        try storeGate.enter(body)
    }

    /// The `i` reply's pairs.
    func infoPairs() -> [(String, String)] {
        let store = store.describe()
        return [
            ("backend", configuration.backendName), ("name", store.name),
            ("mailboxes", String(store.geometry.mailboxes)), ("mailbox_size", String(store.geometry.mailboxSize)),
            ("packet_size", String(configuration.packetSize)), ("coordinator", store.coordinator),
            ("message_overhead", String(StoreLayout.messageOverhead)), ("port", String(configuration.port)),
            ("pid", String(getpid())), ("servers", String(store.servers)),
        ] + store.infoFields
    }
}
