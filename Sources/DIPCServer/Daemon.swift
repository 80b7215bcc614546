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
        do { try systemCall("pipe2") { cdipc_pipe_cloexec(&fds) } } catch { return .failed(reason: "\(error)") }
        defer { closeDescriptor(fds[0]) }
        var writeEnd = fds[1]
        if writeEnd == childReadyFD {  // dup2 onto itself would keep close-on-exec set
            defer { closeDescriptor(fds[1]) }
            do { writeEnd = try systemCall("fcntl(F_DUPFD_CLOEXEC)") { fcntl(fds[1], F_DUPFD_CLOEXEC, 10) } } catch {
                return .failed(reason: "\(error)")
            }
        }
        let executable = (try? readLink("/proc/self/exe")) ?? CommandLine.arguments[0]
        let argv = [executable] + arguments
        var env = environmentList().filter { !$0.hasPrefix(readyVariable + "=") }
        env.append("\(readyVariable)=\(childReadyFD)")
        var pid: pid_t = 0
        let spawned = Result {
            try withCStrings(argv) { cArgv in
                try withCStrings(env) { cEnv in
                    try errnoReturningCall("posix_spawn") { cdipc_spawn_detached(&pid, executable, cArgv, cEnv, writeEnd, childReadyFD) }
                }
            }
        }
        closeDescriptor(writeEnd)
        if case let .failure(error) = spawned { return .failed(reason: "cannot start the server process: \(error)") }

        var received: [UInt8] = []
        let deadline = monotonicSeconds() + timeoutSeconds
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !received.contains(UInt8(ascii: "\n")) {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 {
                // Our own child, not yet reaped: kill cannot fail (ESRCH needs it reaped).
                ignoringFailure("the child is ours and unreaped, so it exists") { kill(pid, SIGKILL) }
                return .failed(reason: "the server did not become ready within \(Int(timeoutSeconds)) s")
            }
            var pfd = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let ready: Int32
            do {
                ready = try systemCall("poll") { poll(&pfd, 1, Int32(max(0, deadline - monotonicSeconds()) * 1000) + 1) }
            } catch {
                return .failed(reason: "waiting for the server process: \(error)")
            }
            if ready == 0 { continue }
            // A read error on our own pipe counts as the pipe's end: the child is reaped and described.
            let n = (try? buffer.withUnsafeMutableBytes { raw in try systemCall("read") { read(fds[0], raw.baseAddress, raw.count) } }) ?? 0
            if n == 0 {
                let how = reap(pid).map(describe(status:)) ?? "ended"
                return .failed(reason: "the server process \(how) during start-up")
            }
            received.append(contentsOf: buffer[0..<n])
        }
        let line = String(decoding: received.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        if line.hasPrefix("ready ") { return .ready(line: String(line.dropFirst(6))) }
        if line.hasPrefix("error ") {
            // The child exits right after reporting; reap it so no zombie outlives us.
            _ = reap(pid)
            return .failed(reason: String(line.dropFirst(6)))
        }
        return .failed(reason: "unexpected start-up report: \(line)")
    }

    /// Waits for the child `pid` to end and returns its wait status; nil when it cannot be
    /// waited for (not our child any more), which leaves nothing to reap.
    private static func reap(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        guard (try? systemCall("waitpid", { waitpid(pid, &status, 0) })) == pid else { return nil }
        return status
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
        // A descriptor that is not open (EBADF) is no channel: the server then starts
        // without reporting, as when nobody waits for it.
        guard (try? systemCall("fcntl(F_SETFD)", { fcntl(fd, F_SETFD, FD_CLOEXEC) })) != nil else { return nil }
        return ReadinessChannel(fd: fd)
    }

    /// Reports that the server is serving; `line` is what the waiting parent prints.
    public func ready(_ line: String) { report("ready " + line) }

    /// Reports why start-up failed; the parent prints it on stderr.
    public func failed(_ reason: String) { report("error " + reason) }

    private func report(_ text: String) {
        let bytes = Array((text.replacingNewlines() + "\n").utf8)
        // The parent may have given up waiting (EPIPE; SIGPIPE is ignored): there is
        // nobody left to tell, so the report is best effort. A line of a few hundred
        // bytes fits a pipe's buffer in one write.
        ignoringFailure("a parent that stopped waiting reads nothing") {
            bytes.withUnsafeBytes { raw in try? systemCall("write") { write(fd, raw.baseAddress, raw.count) } }
        }
        closeDescriptor(fd)
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
    let n = try systemCall("readlink(\(path))") { readlink(path, &buffer, buffer.count - 1) }
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
func withCStrings<R, E: Error>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) throws(E) -> R) throws(E) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { pointers.forEach { free($0) } }
    return try pointers.withUnsafeBufferPointer { buffer throws(E) in try body(buffer.baseAddress!) }
}
