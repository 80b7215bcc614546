import Atomics
import CDIPCShims
import DIPCCore
import DIPCProtocol
import Glibc
import Logging

/// A running DIPC server: one listening socket, an accept thread, and one thread per
/// connection, serving the mailboxes of one `SharedStore`.
///
/// `start` binds and begins accepting; `stop` stops accepting, answers idle
/// connections `err shutdown`, and lets requests in flight finish until the grace
/// period ends. The store is the caller's to open and to detach.
public final class Server: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let store: SharedStore
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
    /// -1 while none could be opened (then the next shortage is met without it).
    private var spareDescriptor = Server.openSpareDescriptor()
    private var lastDescriptorWarning = -Double.infinity

    /// A server that will accept on `listener` (which it owns from now on and closes in `stop`).
    public init(configuration: ServerConfiguration, listener: ListeningSocket, store: SharedStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.listener = listener
        var fds: [Int32] = [0, 0]
        try systemCall("pipe2") { cdipc_pipe_cloexec(&fds) }
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
            let fd: Int32
            do {
                fd = try systemCall("accept") { cdipc_accept_cloexec(listener.fd) }
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
                    turnAwayOneClient()
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
                reject(fd, ProtocolError(code: .shutdown, message: "server is stopping", closesConnection: true))
                return
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
            let connection: Connection
            do {
                connection = try Connection(fd: fd, server: self)
            } catch {
                // The socket is unusable (its options cannot be set): nothing can be sent on it.
                logger.error("cannot set up a connection", metadata: ["error": "\(error)"])
                connectionEnded()
                closeDescriptor(fd)
                continue
            }
            do {
                try startDetachedThread(name: "dipc-conn") { connection.run() }
            } catch {
                logger.error("cannot start a connection thread", metadata: ["error": "\(error)"])
                connectionEnded()
                Server.sendCourtesyReply(fd, ProtocolError(code: .busy, message: "server cannot start another thread", closesConnection: true).encoded)
                closeDescriptor(fd)
            }
        }
    }

    /// Out of descriptors: frees the spare one to accept the next client, answers it
    /// `err busy`, closes it, and takes a spare descriptor again.
    private func turnAwayOneClient() {
        if spareDescriptor >= 0 { closeDescriptor(spareDescriptor) }
        // Failing here means the client that caused the shortage already left, or another
        // thread took the descriptor first: either way the loop simply carries on.
        if let turnedAway = try? systemCall("accept", { cdipc_accept_cloexec(listener.fd) }) {
            statistics.rejected.add(1)
            Server.sendCourtesyReply(turnedAway, ProtocolError(code: .busy, message: "server is out of file descriptors", closesConnection: true).encoded)
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

    /// Sends `error` on a connection that will not be served, then closes it, on a
    /// short-lived thread so that the accept loop never waits for that client.
    private func reject(_ fd: Int32, _ error: ProtocolError) {
        let bytes = error.encoded
        @Sendable func answer() {
            Server.sendCourtesyReply(fd, bytes)
            SocketIO.closeGracefully(fd)
        }
        do {
            try startDetachedThread(name: "dipc-reject") { answer() }
        } catch {
            Server.sendCourtesyReply(fd, bytes)
            closeDescriptor(fd)
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
        // The pipe is empty until now and written once, so the write cannot block or
        // fail but through a bug (a closed descriptor), which traps.
        do { try systemCall("write(stop pipe)") { write(stopSignalWriteFD, &byte, 1) } } catch { preconditionFailure("\(error)") }
        // Wakes the accept thread; a listener that is already shut down is fine.
        ignoringFailure("only wakes the accept thread, which also checks isStopping") {
            shutdown(listener.fd, Int32(SHUT_RDWR))
        }
        while monotonicSeconds() < stopDeadline + 0.5 {
            if activeConnections.load(ordering: .acquiring) == 0 && acceptLoopDone.load(ordering: .acquiring) { break }
            usleep(5_000)
        }
        let left = activeConnections.load(ordering: .acquiring)
        if left > 0 { logger.warning("stopping with connections still open", metadata: ["connections": "\(left)"]) }
        closeDescriptor(listener.fd)
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
        [
            ("backend", configuration.backendName), ("name", store.name),
            ("mailboxes", String(store.geometry.mailboxes)), ("mailbox_size", String(store.geometry.mailboxSize)),
            ("packet_size", String(configuration.packetSize)), ("coordinator", store.policy.rawValue),
            ("message_overhead", String(StoreLayout.messageOverhead)), ("port", String(configuration.port)),
            ("pid", String(getpid())), ("servers", String(store.liveServerCount)),
        ]
    }
}
