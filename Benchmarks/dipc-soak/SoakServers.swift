@preconcurrency import Glibc
import DIPCTestSupport

/// A failure of the soak's own machinery (not an invariant): the message says what.
struct SoakError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Seconds on the monotonic clock.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The soak's servers: real `dipc` processes (detached, as users start them) in a
/// private runtime and state directory, started, SIGKILLed and stopped with `dipcrm`.
final class SoakServers: @unchecked Sendable {
    let bin: String
    let backend: String
    let name: String
    let ports: [Int]
    let scratch: String
    let mailboxes: Int
    let mailboxKB: Int
    /// Options given to every server before its arguments (`--max-clients` ...).
    var options: [String] = []
    private var environment: [String] = []

    init(bin: String, backend: String, mailboxes: Int, mailboxKB: Int, servers: Int) throws {
        self.bin = bin
        self.backend = backend
        self.mailboxes = mailboxes
        self.mailboxKB = mailboxKB
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/dipc-soak-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SoakError("mkdtemp in \(base): \(String(cString: strerror(errno)))") }
        scratch = String(cString: made)
        name = "soak\(getpid())"
        ports = try (0..<servers).map { _ in try LoopbackPort.free() }
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if !text.hasPrefix("DIPC_RUNTIME_DIR="), !text.hasPrefix("DIPC_STATE_DIR=") { environment.append(text) }
            index += 1
        }
        environment += ["DIPC_RUNTIME_DIR=\(scratch)/run", "DIPC_STATE_DIR=\(scratch)/state"]
    }

    var arguments: (Int) -> [String] {
        { [backend, name, options, mailboxes, mailboxKB] port in
            ["--backend", backend, "--name", name] + options + ["\(mailboxes)", "\(mailboxKB)", "\(port)", "1"]
        }
    }

    /// Starts the server for `port` (detached); returns its start-up line.
    @discardableResult
    func start(_ port: Int) throws -> String {
        let result = try run("\(bin)/dipc", arguments(port), timeout: 30)
        guard result.status == 0 else {
            throw SoakError("dipc \(arguments(port).joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
        }
        return result.stdout.split(separator: "\n").first.map(String.init) ?? ""
    }

    /// Pid and start time of the server on `port`, from its runtime record.
    func process(_ port: Int) -> (pid: pid_t, startTime: String)? {
        let text = TextFile.read("\(scratch)/run/dipc-\(port).record")
        var pid: pid_t?
        var startTime: String?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("pid=") { pid = pid_t(line.dropFirst(4)) }
            if line.hasPrefix("start_time=") { startTime = String(line.dropFirst(11)) }
        }
        guard let pid, let startTime else { return nil }
        return (pid, startTime)
    }

    /// SIGKILLs the server on `port` and waits until it is gone.
    func kill(_ port: Int) throws {
        guard let (pid, _) = process(port) else { throw SoakError("no runtime record for port \(port)") }
        Glibc.kill(pid, SIGKILL)
        let deadline = now() + 10
        while Glibc.kill(pid, 0) == 0 && !isZombie(pid) {
            if now() > deadline { throw SoakError("pid \(pid) survived SIGKILL for 10 s") }
            usleep(5_000)
        }
    }

    /// `dipcrm PORT`.
    func stop(_ port: Int) throws {
        let result = try run("\(bin)/dipcrm", ["\(port)"], timeout: 30)
        guard result.status == 0 else { throw SoakError("dipcrm \(port) failed (\(result.status)): \(result.stderr)") }
    }

    /// Stops every server that still has a record, then removes the scratch directory
    /// (for tdb, the database file with it).
    func removeAll() {
        for port in ports where access("\(scratch)/run/dipc-\(port).record", F_OK) == 0 { _ = try? stop(port) }
        for port in ports {
            if let (pid, startTime) = process(port), processStartTime(pid) == startTime { Glibc.kill(pid, SIGKILL) }
        }
        _ = try? run("/bin/rm", ["-rf", scratch], timeout: 30)
    }

    // MARK: processes

    private func isZombie(_ pid: pid_t) -> Bool {
        let stat = TextFile.read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    private func processStartTime(_ pid: pid_t) -> String? {
        let stat = TextFile.read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// Runs a program to completion with the soak's environment.
    private func run(_ path: String, _ arguments: [String], timeout: Double) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = "\(scratch)/spawn-\(getpid()).out", err = "\(scratch)/spawn-\(getpid()).err"
        defer {
            unlink(out)
            unlink(err)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw SoakError("posix_spawn \(path): \(String(cString: strerror(rc)))") }
        let deadline = now() + timeout
        while true {
            var status: Int32 = 0
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid {
                let signal = status & 0x7F
                return (signal == 0 ? (status >> 8) & 0xFF : 128 + signal, TextFile.read(out), TextFile.read(err))
            }
            if done < 0 && errno != EINTR { throw SoakError("waitpid \(pid): \(String(cString: strerror(errno)))") }
            if now() > deadline {
                Glibc.kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw SoakError("\(path) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
            }
            usleep(5_000)
        }
    }

}

