@preconcurrency import Glibc
import DIPCTestSupport

/// Starting and stopping the servers under test.
enum Processes {
    /// `program` itself when it contains a slash, else its first match in `PATH`
    /// (then /usr/bin, /usr/sbin, /usr/local/bin); nil when not found.
    static func find(_ program: String) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
            let candidate = "\(dir)/\(program)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Spawns `path` with `arguments`; stdin from /dev/null, stdout and stderr to the
    /// given files (or /dev/null); `environment` adds to (or overrides) ours.
    static func spawn(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                      stdoutPath: String? = nil, stderrPath: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        var env: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let key = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if environment[key] == nil { env.append(text) }
            index += 1
        }
        env += environment.map { "\($0.key)=\($0.value)" }

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        guard rc == 0 else { throw BenchError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits for `pid` to exit; its exit status (128 + signal when killed), or nil after `timeout` seconds.
    static func wait(_ pid: pid_t, timeout: Double) -> Int32? {
        let deadline = now() + timeout
        while true {
            var status: Int32 = 0
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid {
                let signal = status & 0x7F
                return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
            }
            if rc < 0 && errno != EINTR { return -1 }
            if now() >= deadline { return nil }
            usleep(1_000)
        }
    }

    /// Runs a program to completion (at most `timeout` seconds, then it is killed).
    static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                    scratch: String, timeout: Double = 30) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = "\(scratch)/run-\(getpid()).out", err = "\(scratch)/run-\(getpid()).err"
        defer {
            unlink(out)
            unlink(err)
        }
        let pid = try spawn(path, arguments, environment: environment, stdoutPath: out, stderrPath: err)
        guard let status = wait(pid, timeout: timeout) else {
            stop(pid)
            throw BenchError("\(path) \(arguments.joined(separator: " ")) did not finish within \(Int(timeout)) s")
        }
        return (status, TextFile.read(out), TextFile.read(err))
    }

    /// SIGTERM, up to 3 s for it to exit, then SIGKILL; reaps it.
    static func stop(_ pid: pid_t) {
        kill(pid, SIGTERM)
        if wait(pid, timeout: 3) == nil {
            kill(pid, SIGKILL)
            _ = wait(pid, timeout: 3)
        }
    }

    /// Waits until something accepts connections on 127.0.0.1:`port`.
    static func waitForPort(_ port: Int, timeout: Double) -> Bool {
        let deadline = now() + timeout
        while now() < deadline {
            if let connection = try? RawConnection(port: port) {
                connection.close()
                return true
            }
            usleep(20_000)
        }
        return false
    }
}

extension Processes {
    /// This executable's path (from /proc/self/exe).
    static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }
}
