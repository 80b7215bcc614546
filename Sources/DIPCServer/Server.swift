import Atomics
import CDIPCShims
import DIPCCore
import DIPCProtocol
import Glibc
import Logging

/// A running DIPC server: one listening socket, an accept thread, and one thread per
/// connection, serving the mailboxes of one `MailboxStore`.
///
/// `start` binds and begins accepting; `stop` stops accepting, answers idle
/// connections `err shutdown`, and lets requests in flight finish until the grace
/// period ends. The store is the caller's to open and to detach.
public final class Server: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let store: any MailboxStore
    let logger: Logger
    let statistics = ServerStatistics()
    private let listener: ListeningSocket
    /// Readable once a stop has begun; every connection polls it.
    let stopSignalFD: Int32
    private let stopSignalWriteFD: Int32
    private let stopping = ManagedAtomic<Bool>(false)
    /// Monotonic time after which requests in flight are cut short.
    private(set) var stopDeadline = Double.infinity
    private let activeConnections = ManagedAtomic<Int>(0)
    /// Threads inside `withStore`, and whether the store may still be entered.
    private let storeUsers = ManagedAtomic<Int>(0)
    private let storeClosed = ManagedAtomic<Bool>(false)
    private let acceptLoopDone = ManagedAtomic<Bool>(false)
    /// Held open so that, out of descriptors, the accept thread can free one to turn a client away.
    private var spareDescriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
    private var lastDescriptorWarning = -Double.infinity

    /// A server that will accept on `listener` (which it owns from now on and closes in `stop`).
    public init(configuration: ServerConfiguration, listener: ListeningSocket, store: any MailboxStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.listener = listener
        var fds: [Int32] = [0, 0]
        guard cdipc_pipe_cloexec(&fds) == 0 else {
            throw SystemError.last("pipe2")
        }
        stopSignalFD = fds[0]
        stopSignalWriteFD = fds[1]
    }

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    /// Starts the accept thread.
    public func start() throws {
        try startDetachedThread(name: "dipc-accept") { [self] in acceptLoop() }
    }

    private func acceptLoop() {
        defer { acceptLoopDone.store(true, ordering: .releasing) }
        while true {
            let fd = cdipc_accept_cloexec(listener.fd)
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
                    let turnedAway = cdipc_accept_cloexec(listener.fd)
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
    /// flight may finish within the grace period. Returns once every connection has
    /// closed or the grace period has passed.
    public func stop() {
        stopDeadline = monotonicSeconds() + configuration.stopGraceSeconds
        stopping.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(stopSignalWriteFD, &byte, 1)
        shutdown(listener.fd, Int32(SHUT_RDWR))
        while monotonicSeconds() < stopDeadline + 0.5 {
            if activeConnections.load(ordering: .acquiring) == 0 && acceptLoopDone.load(ordering: .acquiring) { break }
            usleep(5_000)
        }
        let left = activeConnections.load(ordering: .acquiring)
        if left > 0 { logger.warning("stopping with connections still open", metadata: ["connections": "\(left)"]) }
        close(listener.fd)
    }

    /// Thrown by `withStore` once the store is closed for this server.
    struct StoreClosed: Error {}

    /// Runs `body`, which uses the store; throws `StoreClosed` once `closeStore` has begun,
    /// so no thread touches the store after it is detached.
    func withStore<T>(_ body: () throws -> T) throws -> T {
        storeUsers.wrappingIncrement(ordering: .sequentiallyConsistent)
        defer { storeUsers.wrappingDecrement(ordering: .sequentiallyConsistent) }
        if storeClosed.load(ordering: .sequentiallyConsistent) { throw StoreClosed() }
        return try body()
    }

    /// Closes the store to every connection and waits (at most `timeoutSeconds`) until
    /// no thread is inside it. Returns whether it is now unused. Call after `stop`.
    public func closeStore(timeoutSeconds: Double = 2) -> Bool {
        storeClosed.store(true, ordering: .sequentiallyConsistent)
        let deadline = monotonicSeconds() + timeoutSeconds
        while storeUsers.load(ordering: .sequentiallyConsistent) > 0 {
            if monotonicSeconds() > deadline { return false }
            usleep(1_000)
        }
        return true
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
