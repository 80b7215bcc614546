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
    /// Every listener gets its own accept loop (TCP today; TLS or a Unix socket would be more).
    private let listeners: [ListeningSocket]
    private let storeGate: StoreGate
    /// Readable once a stop has begun; every connection polls it.
    let stopSignalFD: Int32
    private let stopSignalWriteFD: Int32
    private let stopping = ManagedAtomic<Bool>(false)
    /// Monotonic time after which requests in flight are cut short.
    private(set) var stopDeadline = Double.infinity
    private let activeConnections = ManagedAtomic<Int>(0)
    private let runningAcceptLoops = ManagedAtomic<Int>(0)

    /// A server that will accept on `listener`, with a store gate of its own.
    /// The listener stays the caller's to close (after `stop`).
    public convenience init(configuration: ServerConfiguration, listener: ListeningSocket, store: any MailboxStore,
                            logger: Logger) throws {
        try self.init(configuration: configuration, listeners: [listener], store: store, storeGate: StoreGate(), logger: logger)
    }

    /// A server that will accept on every one of `listeners` (the caller's to close
    /// after `stop`) and enter `store` only through `storeGate`.
    init(configuration: ServerConfiguration, listeners: [ListeningSocket], store: any MailboxStore, storeGate: StoreGate,
         logger: Logger) throws {
        precondition(!listeners.isEmpty, "a server needs a listener")
        self.configuration = configuration
        self.store = store
        self.storeGate = storeGate
        self.logger = logger
        self.listeners = listeners
        var fds: [Int32] = [0, 0]
        guard cdipc_pipe_cloexec(&fds) == 0 else {
            throw SystemError.last("pipe2")
        }
        stopSignalFD = fds[0]
        stopSignalWriteFD = fds[1]
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Starts one accept thread per listener. When one cannot be started, stops the
    /// ones already running (as `stop` does) and throws.
    public func start() throws {
        for listener in listeners {
            let listeningFD = listener.fd
            runningAcceptLoops.wrappingIncrement(ordering: .acquiringAndReleasing)
            do {
                try startDetachedThread(name: "dipc-accept") { [self] in acceptLoop(listeningFD) }
            } catch {
                runningAcceptLoops.wrappingDecrement(ordering: .acquiringAndReleasing)
                stop()
                throw error
            }
        }
    }

    private func acceptLoop(_ listeningFD: Int32) {
        // Held open so that, out of descriptors, this loop can free one to turn a client away.
        var spareDescriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
        var lastDescriptorWarning = -Double.infinity
        defer {
            close(spareDescriptor)
            runningAcceptLoops.wrappingDecrement(ordering: .acquiringAndReleasing)
        }
        while true {
            let fd = cdipc_accept_cloexec(listeningFD)
            if isStopping {
                if fd >= 0 { reject(fd, ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true)) }
                return
            }
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE:
                    // Out of descriptors: free the spare one to accept and turn the client away.
                    let error = SystemError.last("accept")
                    if monotonicSeconds() - lastDescriptorWarning > 10 {
                        lastDescriptorWarning = monotonicSeconds()
                        logger.warning("out of file descriptors; turning clients away", metadata: ["error": "\(error)"])
                    }
                    close(spareDescriptor)
                    let turnedAway = cdipc_accept_cloexec(listeningFD)
                    if turnedAway >= 0 {
                        statistics.rejected.add(1)
                        let bytes = ProtocolError(code: .busy, message: "server is out of file descriptors", closesConnection: true).encoded
                        _ = bytes.withUnsafeBytes { send(turnedAway, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                        close(turnedAway)
                    }
                    spareDescriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    usleep(1_000)
                    continue
                case ENOBUFS, ENOMEM:
                    logger.warning("accept: out of memory, retrying", metadata: ["error": "\(SystemError.last("accept"))"])
                    usleep(10_000)
                    continue
                default:
                    logger.error("accept failed", metadata: ["error": "\(SystemError.last("accept"))"])
                    return
                }
            }
            let active = activeConnections.wrappingIncrementThenLoad(ordering: .acquiringAndReleasing)
            if active > configuration.maxClients {
                activeConnections.wrappingDecrement(ordering: .relaxed)
                statistics.rejected.add(1)
                reject(fd, ProtocolError(code: .busy, message: "server already has \(configuration.maxClients) clients (--max-clients)", closesConnection: true))
                continue
            }
            statistics.accepted.add(1)
            statistics.connections.add(1)
            let connection = Connection(fd: fd, server: self)
            do {
                try startDetachedThread(name: "dipc-conn") { connection.run() }
            } catch {
                logger.error("cannot start a connection thread", metadata: ["error": "\(error)"])
                connectionEnded()
                let bytes = ProtocolError(code: .busy, message: "server cannot start another thread", closesConnection: true).encoded
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                close(fd)
            }
        }
    }

    /// Sends `error` on a connection that will not be served, then closes it, on a
    /// short-lived thread so that the accept loop never waits for that client.
    private func reject(_ fd: Int32, _ error: ProtocolError) {
        let bytes = error.encoded
        @Sendable func answer() {
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            SocketIO.closeGracefully(fd)
        }
        do {
            try startDetachedThread(name: "dipc-reject") { answer() }
        } catch {
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            close(fd)
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
        _ = write(stopSignalWriteFD, &byte, 1)
        for listener in listeners { shutdown(listener.fd, Int32(SHUT_RDWR)) }
        while monotonicSeconds() < stopDeadline + timeouts.stopDrainSeconds {
            if activeConnections.load(ordering: .acquiring) == 0 && runningAcceptLoops.load(ordering: .acquiring) == 0 { break }
            usleep(5_000)
        }
        let left = activeConnections.load(ordering: .acquiring)
        if left > 0 { logger.warning("stopping with connections still open", metadata: ["connections": "\(left)"]) }
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
        ]
    }
}
