@preconcurrency import Glibc
import DIPCCore
import DIPCRuntime
import Logging

/// What `dipc` asks for once its arguments are valid.
public struct LaunchRequest: Sendable {
    public var configuration: ServerConfiguration
    public var storeName: String
    public var geometry: StoreGeometry
    public var policy: CoordinatorPolicy
    /// Stay attached and log to stderr.
    public var foreground: Bool
    /// Extra facts for the runtime record (e.g. the TDB file).
    public var recordFields: [(String, String)]

    public init(configuration: ServerConfiguration, storeName: String, geometry: StoreGeometry,
                policy: CoordinatorPolicy, foreground: Bool, recordFields: [(String, String)] = []) {
        self.configuration = configuration
        self.storeName = storeName
        self.geometry = geometry
        self.policy = policy
        self.foreground = foreground
        self.recordFields = recordFields
    }
}

/// The server's whole life: detach (unless in the foreground), bind, open the store,
/// write the runtime record, report readiness, serve until SIGTERM/SIGINT, then stop
/// gracefully and leave nothing behind.
public enum ServerLauncher {
    /// Runs `dipc` and returns its exit status. `arguments` are the command's own
    /// (without the program name), used to re-execute it detached. `openStore`
    /// creates or attaches the store (the caller knows the concrete backends).
    public static func run(_ request: LaunchRequest, arguments: [String],
                           openStore: @escaping () throws -> any MailboxStore) -> Int32 {
        setvbuf(stdout, nil, _IOLBF, 0)
        signal(SIGPIPE, SIG_IGN)
        let channel = ReadinessChannel.fromEnvironment()
        if !request.foreground && channel == nil {
            switch Daemon.spawnAndWait(arguments: ["--foreground"] + arguments) {
            case let .ready(line):
                print(line)
                return 0
            case let .failed(reason):
                printError(reason)
                return 1
            }
        }
        return serve(request, channel: channel, openStore: openStore)
    }

    private static func serve(_ request: LaunchRequest, channel: ReadinessChannel?,
                              openStore: () throws -> any MailboxStore) -> Int32 {
        let config = request.configuration
        let runtime = RuntimeDirectory.fromEnvironment()
        func fail(_ reason: String) -> Int32 {
            if let channel { channel.failed(reason) } else { printError(reason) }
            return 1
        }
        do {
            try runtime.create()
        } catch {
            return fail("cannot create the runtime directory \(runtime.path): \(error)")
        }
        let logFD: Int32
        if channel != nil {
            logFD = open(runtime.logPath(port: config.port), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
            if logFD < 0 { return fail("cannot open the log \(runtime.logPath(port: config.port)): \(SystemError.last("open"))") }
        } else {
            logFD = STDERR_FILENO
        }
        let logger = Logger(label: "dipc") { FileLogHandler(label: $0, fd: logFD) }

        raiseOpenFileLimit()
        // Signals are taken by sigwait on this thread; every thread started later inherits the mask.
        // SIGHUP (terminal gone) and SIGQUIT stop the server gracefully too.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        sigaddset(&stopSignals, SIGHUP)
        sigaddset(&stopSignals, SIGQUIT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        let recordPath = runtime.recordPath(port: config.port)
        let previous = RuntimeRecord.read(from: recordPath)
        if let previous, let owner = previous.process, owner.isAlive {
            // Another address on the same port: its record must not be overwritten.
            return fail("port \(config.port) already has a dipc server (pid \(owner.pid), on \(previous["bind"] ?? "?")); stop it with dipcrm \(config.port) first")
        }
        let listener: ListeningSocket
        do {
            listener = try ListeningSocket(address: config.bindAddress, port: config.port)
        } catch {
            return fail("\(error)")
        }
        // A crashed server's record is set aside, never overwritten: `dipcrm PORT` must
        // still be able to clean up what it left behind. A failed start puts it back.
        var setAside: String?
        if let crashed = previous?.process {
            let path = runtime.crashedRecordPath(port: config.port, pid: crashed.pid)
            guard rename(recordPath, path) == 0 else {
                let error = SystemError.last("rename(\(recordPath), \(path))")
                close(listener.fd)
                return fail("cannot set aside the record of the crashed server on port \(config.port): \(error)")
            }
            setAside = path
        }
        /// Undoes this start's record: ours removed, a crashed server's put back.
        func withdrawRecord() {
            unlink(recordPath)
            if let setAside { rename(setAside, recordPath) }
        }
        // A first record before the store exists lets dipcrm clean up if this process
        // is killed while it creates the store.
        do {
            try record(for: request, store: nil).write(to: recordPath)
        } catch {
            close(listener.fd)
            withdrawRecord()
            return fail("cannot write the runtime record \(recordPath): \(error)")
        }
        let store: any MailboxStore
        do {
            store = try openStore()
        } catch {
            close(listener.fd)
            withdrawRecord()
            return fail("cannot open store \"\(request.storeName)\": \(error)")
        }
        let server: Server
        let serving = record(for: request, store: store)
        do {
            server = try Server(configuration: config, listener: listener, store: store, logger: logger)
            try server.start()
            try serving.write(to: recordPath)
        } catch {
            close(listener.fd)
            withdrawRecord()
            _ = try? store.detach()
            return fail("\(error)")
        }
        if let setAside, let previous {
            if Self.sameStore(previous, serving) {
                // This server now holds that store; its own stop or dipcrm removes it.
                unlink(setAside)
            } else {
                logger.warning("kept the record of the crashed server on this port: dipcrm \(config.port) cleans up its store too",
                               metadata: ["record": "\(setAside)", "store": "\(previous["name"] ?? "?")"])
            }
        }
        let line = "dipc: serving \(request.geometry.mailboxes) mailboxes of \(request.geometry.mailboxSize) bytes on "
            + "\(displayAddress(config.bindAddress)):\(config.port) (backend \(config.backendName), name \(request.storeName), "
            + "coordinator \(request.policy.rawValue), pid \(getpid()))"
        logger.info("\(line)")
        if let channel {
            channel.ready(line)
        } else {
            print(line)
            fflush(stdout)
        }

        var received: Int32 = 0
        while sigwait(&stopSignals, &received) != 0 {}
        logger.info("stopping", metadata: ["signal": "\(received)"])
        server.stop()
        guard server.closeStore() else {
            // A thread is still inside the store (waiting for a lock a stopped peer holds):
            // detaching now could leave it a lock nobody owns. Exit as a crashed server
            // does instead; the slot is reclaimed by the next server or by dipcrm, which
            // the runtime record left in place tells to clean up.
            logger.error("a connection is still inside the store after the grace period; exiting without detaching")
            return 1
        }
        do {
            let removed = try store.detach()
            logger.info(removed ? "removed the store (last server)" : "detached; other servers still share the store")
        } catch {
            logger.error("detaching the store failed", metadata: ["error": "\(error)"])
        }
        unlink(recordPath)
        logger.info("stopped")
        return 0
    }

    /// Whether two records name the same store (backend, name and, for tdb, file).
    private static func sameStore(_ a: RuntimeRecord, _ b: RuntimeRecord) -> Bool {
        a["backend"] == b["backend"] && a["name"] == b["name"] && a["db"] == b["db"]
    }

    /// The runtime record; without `store` (not opened yet) it lacks the slot and IPC ids.
    /// Where the store and the request both name a field, the store's value is kept.
    private static func record(for request: LaunchRequest, store: (any MailboxStore)?) -> RuntimeRecord {
        let me = ProcessIdentity.current()
        let config = request.configuration
        let storeFields = store?.describe().recordFields ?? []
        let requestFields = request.recordFields.filter { field in !storeFields.contains { $0.0 == field.0 } }
        return RuntimeRecord(fields: [
            ("pid", String(me.pid)), ("start_time", String(me.startTime)), ("port", String(config.port)),
            ("bind", config.bindAddress), ("backend", config.backendName), ("name", request.storeName),
            ("mailboxes", String(request.geometry.mailboxes)), ("mailbox_size", String(request.geometry.mailboxSize)),
            ("packet_size", String(config.packetSize)), ("coordinator", request.policy.rawValue),
        ] + storeFields + requestFields)
    }

    private static func displayAddress(_ address: String) -> String {
        address.contains(":") ? "[\(address)]" : address
    }
}

/// Raises the soft limit on open files to the hard limit: every client costs a descriptor.
private func raiseOpenFileLimit() {
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}

/// Prints `dipc: reason` (one line) on stderr.
func printError(_ reason: String, program: String = "dipc") {
    fputs("\(program): \(reason.replacingNewlines())\n", stderr)
}
