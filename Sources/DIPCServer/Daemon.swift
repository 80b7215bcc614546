@preconcurrency import Glibc
import CDIPCShims
import DIPCCore
import DIPCRuntime

/// Detaching: the command re-executes itself in the foreground, in a new session with
/// stdio on /dev/null, and waits on a pipe until the child reports "ready" or why it
/// could not start, so that start-up errors still reach the user's terminal.
public enum Daemon {
    /// Names the child's end of the readiness pipe.
    static let readyVariable = "DIPC_INTERNAL_READY_FD"
    /// The descriptor the child finds the pipe on.
    static let childReadyFD: Int32 = 3

    /// How the detached child's start-up ended.
    public enum StartOutcome: Equatable {
        case ready(line: String)
        case failed(reason: String)
    }

    /// Spawns `/proc/self/exe arguments` detached with the readiness pipe and waits at
    /// most `timeoutSeconds` for its report.
    public static func spawnAndWait(arguments: [String], timeoutSeconds: Double = ServerTimeouts.standard.readinessSeconds) -> StartOutcome {
        var fds: [Int32] = [0, 0]
        guard cdipc_pipe_cloexec(&fds) == 0 else { return .failed(reason: "\(SystemError.last("pipe2"))") }
        var writeEnd = fds[1]
        if writeEnd == childReadyFD {  // dup2 onto itself would keep close-on-exec set
            writeEnd = fcntl(fds[1], F_DUPFD_CLOEXEC, 10)
            close(fds[1])
        }
        defer { close(fds[0]) }
        let executable = (try? readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = [executable] + arguments
        var env = environmentList().filter { !$0.hasPrefix(readyVariable + "=") }
        env.append("\(readyVariable)=\(childReadyFD)")
        var pid: pid_t = 0
        let rc = withCStrings(argv) { cArgv in
            withCStrings(env) { cEnv in
                cdipc_spawn_detached(&pid, executable, cArgv, cEnv, writeEnd, childReadyFD)
            }
        }
        close(writeEnd)
        guard rc == 0 else { return .failed(reason: "cannot start the server process: \(SystemError("posix_spawn", errno: rc))") }

        var received: [UInt8] = []
        let deadline = monotonicSeconds() + timeoutSeconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(UInt8(ascii: "\n")) {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 {
                kill(pid, SIGKILL)
                return .failed(reason: "the server did not become ready within \(Int(timeoutSeconds)) s")
            }
            var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(remaining * 1000) + 1)
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                var status: Int32 = 0
                let reaped = waitpid(pid, &status, 0) == pid
                let how = reaped ? describe(status: status) : "ended"
                return .failed(reason: "the server process \(how) during start-up")
            }
            received.append(contentsOf: buffer[0..<n])
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        if line.hasPrefix("ready ") { return .ready(line: String(line.dropFirst(6))) }
        if line.hasPrefix("error ") {
            // The child exits right after reporting; reap it so no zombie outlives us.
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            return .failed(reason: String(line.dropFirst(6)))
        }
        return .failed(reason: "unexpected start-up report: \(line)")
    }

    private static func describe(status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
        return "was killed by signal \(signal)"
    }
}

/// The child's end of the readiness pipe, when this process was started by `Daemon.spawnAndWait`.
public struct ReadinessChannel: Sendable {
    let fd: Int32

    /// The channel named by the environment (and removes the variable so that nothing
    /// started later inherits it).
    public static func fromEnvironment() -> ReadinessChannel? {
        guard let value = environment(Daemon.readyVariable), let fd = Int32(value), fd >= 0 else { return nil }
        unsetenv(Daemon.readyVariable)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return ReadinessChannel(fd: fd)
    }

    /// Reports that the server is serving; `line` is what the waiting parent prints.
    public func ready(_ line: String) { report("ready " + line) }

    /// Reports why start-up failed; the parent prints it on stderr.
    public func failed(_ reason: String) { report("error " + reason) }

    private func report(_ text: String) {
        let bytes = Array((text.replacingNewlines() + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }
}

extension String {
    /// The string on one line.
    func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

func readLink(_ path: String) throws -> String {
    var buffer = [Int8](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink(path, &buffer, buffer.count - 1)
    guard n >= 0 else { throw SystemError.last("readlink(\(path))") }
    return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// The process environment as `NAME=value` strings.
func environmentList() -> [String] {
    var result: [String] = []
    var pointer = environ
    while let entry = pointer.pointee {
        result.append(String(cString: entry))
        pointer += 1
    }
    return result
}

/// Calls `body` with a NULL-terminated C array of `strings`.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
