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

/// The server's whole life: detach (unless in the foreground), start its parts (bind,
/// runtime record, store, accept loops: see `ServerParts`), report readiness, serve
/// until SIGTERM/SIGINT/SIGHUP/SIGQUIT, then stop the parts in reverse order and leave
/// nothing behind.
public enum ServerLauncher {
    /// Runs `dipc` and returns its exit status. `arguments` are the command's own
    /// (without the program name), used to re-execute it detached. `openStore`
    /// creates or attaches the store (the caller knows the concrete backends).
    public static func run(_ request: LaunchRequest, arguments: [String],
                           openStore: @escaping () throws -> any MailboxStore) -> Int32 {
        ignoringFailure("line buffering only keeps a piped stdout prompt") { setvbuf(stdout, nil, _IOLBF, 0) }
        // SIG_ERR is returned only for an invalid signal number.
        ignoringFailure("SIGPIPE is a valid signal") { signal(SIGPIPE, SIG_IGN) }
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

    /// The server itself (in the foreground, or as the detached child reporting on
    /// `channel`): preflight checks, then `ServerParts` started in order by a
    /// `ServerLifecycle`, the ready line, the wait for a stop signal, and the parts
    /// stopped in reverse order. Exit status 1 when start-up failed or when the stop had
    /// to leave the store attached (a thread still inside it).
    static func serve(_ request: LaunchRequest, channel: ReadinessChannel?,
                      runtime: RuntimeDirectory = .fromEnvironment(),
                      openStore: @escaping () throws -> any MailboxStore) -> Int32 {
        let config = request.configuration
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
            do {
                logFD = try systemCall("open") { open(runtime.logPath(port: config.port), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600) }
            } catch {
                return fail("cannot open the log \(runtime.logPath(port: config.port)): \(error)")
            }
        } else {
            logFD = STDERR_FILENO
        }
        let logger = Logger(label: "dipc") { FileLogHandler(label: $0, fd: logFD) }
        raiseOpenFileLimit()

        let records = RecordKeeper(runtime: runtime, port: config.port)
        do {
            try records.checkNoLiveServer()
        } catch {
            return fail("\(error)")
        }
        let parts = ServerParts(request: request, records: records, logger: logger, openStore: openStore)
        let lifecycle = ServerLifecycle(parts.all)
        do {
            try lifecycle.start()
        } catch {
            return fail("\(error)")
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

        let received = parts.signals.wait()
        logger.info("stopping", metadata: ["signal": "\(received)"])
        guard lifecycle.stop() == .complete else { return 1 }
        logger.info("stopped")
        return 0
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
