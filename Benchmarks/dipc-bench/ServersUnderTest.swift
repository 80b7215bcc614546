@preconcurrency import Glibc
import DIPCClient
import DIPCTestSupport

/// A server the suite measures: where it listens and which process to charge CPU to.
protocol ServerUnderTest: AnyObject {
    /// Its name in tables: `floor`, `memcached`, `sysv`, ...
    var label: String { get }
    var proto: BenchProtocol { get }
    var port: Int { get }
    var pid: pid_t { get }
    func stop()
}

/// A real `dipc` server, started detached by `DIR/dipc` and stopped by `DIR/dipcrm`;
/// both are timed (start to ready = `dipc` returning).
final class DipcServer: ServerUnderTest {
    let label: String
    let proto = BenchProtocol.dipc
    let bin: String
    let port: Int
    let pid: pid_t
    let environment: [String: String]
    let scratch: String
    let startLine: String
    let arguments: [String]
    /// Seconds from spawning `dipc` to its exit (the server is ready then).
    let startSeconds: Double
    /// Seconds `dipcrm` took, once stopped.
    private(set) var stopSeconds: Double?
    private var running = true

    static let mailboxes = 16

    init(bin: String, scratch: String, backend: String, options: [String] = [], label: String? = nil) throws {
        self.bin = bin
        self.scratch = scratch
        self.label = label ?? backend
        port = try LoopbackPort.free()
        let runtime = "\(scratch)/runtime", state = "\(scratch)/state"
        mkdir(runtime, 0o700)
        mkdir(state, 0o700)
        environment = ["DIPC_RUNTIME_DIR": runtime, "DIPC_STATE_DIR": state]
        // 64 KiB mailboxes and packets: a 4 KiB value is one send, as for memcached.
        arguments = [String(Self.mailboxes), "64", String(port), "64", "--backend", backend, "--max-clients", "1100"] + options
        let began = now()
        let result = try Processes.run("\(bin)/dipc", arguments, environment: environment, scratch: scratch)
        startSeconds = now() - began
        guard result.status == 0 else {
            running = false
            throw BenchError("\(bin)/dipc \(arguments.joined(separator: " ")) failed (exit \(result.status)): "
                             + result.stderr.trimmingCharacters(in: "\n "))
        }
        startLine = result.stdout.trimmingCharacters(in: "\n ")
        let record = TextFile.read("\(runtime)/dipc-\(port).record")
        pid = record.split(separator: "\n").first { $0.hasPrefix("pid=") }.flatMap { pid_t($0.dropFirst(4)) } ?? 0
        guard pid > 0 else {
            stop()
            throw BenchError("dipc on port \(port) left no pid in its runtime record")
        }
    }

    /// `dipcrm PORT` (timed); if that fails, SIGTERM to the server.
    func stop() {
        guard running else { return }
        running = false
        let began = now()
        if let result = try? Processes.run("\(bin)/dipcrm", [String(port)], environment: environment, scratch: scratch),
           result.status == 0 {
            stopSeconds = now() - began
            return
        }
        fputs("dipc-bench: dipcrm \(port) failed; sending SIGTERM to the server\n", stderr)
        if pid > 0 {
            kill(pid, SIGTERM)
            let deadline = now() + 5
            while kill(pid, 0) == 0 && now() < deadline { usleep(20_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
    }
}

/// A child process serving on a free port (memcached, the echo floor), stopped with SIGTERM.
final class ChildServer: ServerUnderTest {
    let label: String
    let proto: BenchProtocol
    let port: Int
    let pid: pid_t
    let commandLine: String
    private var running = true

    init(label: String, proto: BenchProtocol, path: String, arguments: (Int) -> [String], scratch: String) throws {
        self.label = label
        self.proto = proto
        port = try LoopbackPort.free()
        let args = arguments(port)
        commandLine = ([path] + args).joined(separator: " ")
        let log = "\(scratch)/\(label).log"
        pid = try Processes.spawn(path, args, stdoutPath: log, stderrPath: log)
        guard Processes.waitForPort(port, timeout: 5) else {
            Processes.stop(pid)
            running = false
            throw BenchError("\(label) did not accept connections on port \(port): "
                             + TextFile.read(log).trimmingCharacters(in: "\n "))
        }
    }

    /// memcached with two worker threads on loopback, no UDP.
    static func memcached(path: String, scratch: String) throws -> ChildServer {
        try ChildServer(label: "memcached", proto: .memcached, path: path, arguments: { port in
            // memcached refuses to run as root unless told which user to be.
            ["-p", String(port), "-l", "127.0.0.1", "-U", "0", "-t", "2", "-m", "64", "-c", "1100"]
                + (geteuid() == 0 ? ["-u", "root"] : [])
        }, scratch: scratch)
    }

    /// Redis 7 on plain TCP, without persistence (`--save '' --appendonly no`): one
    /// event-loop thread, no I/O threads.
    static func redis(path: String, scratch: String) throws -> ChildServer {
        try ChildServer(label: "redis", proto: .redis, path: path, arguments: { port in
            ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", scratch,
             "--maxclients", "1100"]
        }, scratch: scratch)
    }

    /// This executable's `echo-server`.
    static func echoFloor(scratch: String) throws -> ChildServer {
        try ChildServer(label: "floor", proto: .echo, path: Processes.selfExecutable(), arguments: { port in
            ["echo-server", "--port", String(port)]
        }, scratch: scratch)
    }

    func stop() {
        guard running else { return }
        running = false
        Processes.stop(pid)
    }
}
