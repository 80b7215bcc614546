import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An error of the harness itself (or an unexpected server behaviour), with a precise message.
struct E2EError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Seconds on a monotonic clock.
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Polls `condition` every `interval` seconds until it holds or `timeout` passes.
@discardableResult
func waitUntil(timeout: Double, interval: Double = 0.02, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNow() + timeout
    while true {
        if condition() { return true }
        if monotonicNow() >= deadline { return false }
        usleep(UInt32(interval * 1_000_000))
    }
}

/// Serialises fd creation without CLOEXEC and `posix_spawn`, so that a pipe of one test
/// never leaks into a process spawned by another test running in parallel.
let spawnLock = NSLock()

/// Where the products (`dipc`, `dipcrm`, `dipc-client`) live: the directory that holds the
/// running test bundle, or one of its parents.
enum Binaries {
    static let productsDirectory: String? = {
        guard let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        else { return nil }
        var dir = (exe as NSString).deletingLastPathComponent
        while dir != "/" && !dir.isEmpty {
            if FileManager.default.isExecutableFile(atPath: dir + "/dipc") { return dir }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return nil
    }()

    static func path(_ name: String) throws -> String {
        guard let dir = productsDirectory else {
            throw E2EError(
                "cannot find the `dipc` product next to the test bundle (\(selfExe)) or in a parent "
                    + "directory; build everything first: swift build --scratch-path .build-e2e")
        }
        let p = dir + "/" + name
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw E2EError("product `\(name)` missing in \(dir); build it first")
        }
        return p
    }

    static var selfExe: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "?"
    }
}

/// The outcome of a finished child process.
struct ProcessResult: CustomStringConvertible {
    var command: [String]
    /// Exit code, or 128 + signal when killed by a signal.
    var status: Int32
    var stdout: [UInt8]
    var stderr: [UInt8]
    var timedOut: Bool

    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }

    var description: String {
        "`\(command.joined(separator: " "))` -> status \(status)\(timedOut ? " (TIMED OUT, killed)" : "")"
            + ", stdout \(out.debugDescription), stderr \(err.debugDescription)"
    }
}

/// A spawned child with piped stdout/stderr (and optionally stdin), read incrementally.
final class ChildProcess {
    let pid: pid_t
    let command: [String]
    private var outFD: Int32
    private var errFD: Int32
    private(set) var stdout: [UInt8] = []
    private(set) var stderr: [UInt8] = []
    private(set) var exitStatus: Int32?

    init(_ path: String, _ args: [String], env: [String: String], stdin: [UInt8]? = nil) throws {
        ignoreSIGPIPE()
        command = [path] + args
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        var inPipe: [Int32] = [-1, -1]
        var pid: pid_t = 0
        spawnLock.lock()
        defer { spawnLock.unlock() }
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else { throw E2EError("pipe: errno \(errno)") }
        if stdin != nil { guard pipe(&inPipe) == 0 else { throw E2EError("pipe: errno \(errno)") } }
        for fd in [outPipe[0], errPipe[0], inPipe[1]] where fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        for fd in [outPipe[1], errPipe[1], inPipe[0]] where fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // dup2 onto 0/1/2 clears it in the child
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if inPipe[0] >= 0 {
            posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        if inPipe[0] >= 0 { close(inPipe[0]) }
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            if inPipe[1] >= 0 { close(inPipe[1]) }
            throw E2EError("posix_spawn \(path): error \(rc)")
        }
        self.pid = pid
        outFD = outPipe[0]
        errFD = errPipe[0]
        _ = fcntl(outFD, F_SETFL, fcntl(outFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(errFD, F_SETFL, fcntl(errFD, F_GETFL) | O_NONBLOCK)
        if let data = stdin {
            // Written in a helper thread so a child that writes a lot before reading cannot
            // dead-lock against us.
            let fd = inPipe[1]
            let thread = Thread {
                var off = 0
                data.withUnsafeBytes { raw in
                    while off < raw.count {
                        let n = write(fd, raw.baseAddress! + off, raw.count - off)
                        if n < 0 {
                            if errno == EINTR { continue }
                            break
                        }
                        off += n
                    }
                }
                close(fd)
            }
            thread.start()
        }
    }

    deinit {
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var st: Int32 = 0
            waitpid(pid, &st, 0)
        }
    }

    /// Reads what is available on stdout/stderr, waiting up to `timeout` for something.
    private func pump(timeout: Double) {
        var fds: [pollfd] = []
        if outFD >= 0 { fds.append(pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)) }
        if errFD >= 0 { fds.append(pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)) }
        if fds.isEmpty {
            usleep(UInt32(timeout * 1_000_000))
            return
        }
        _ = poll(&fds, nfds_t(fds.count), Int32(timeout * 1000))
        drain()
    }

    private func drain() {
        var buf = [UInt8](repeating: 0, count: 65536)
        for which in 0..<2 {
            while true {
                let fd = which == 0 ? outFD : errFD
                if fd < 0 { break }
                let n = read(fd, &buf, buf.count)
                if n > 0 {
                    if which == 0 { stdout += buf[0..<n] } else { stderr += buf[0..<n] }
                } else if n == 0 {
                    close(fd)
                    if which == 0 { outFD = -1 } else { errFD = -1 }
                    break
                } else {
                    if errno == EINTR { continue }
                    break  // EAGAIN
                }
            }
        }
    }

    /// Whether the child has exited (reaps it).
    func checkExited() -> Bool {
        if exitStatus != nil { return true }
        var st: Int32 = 0
        let r = waitpid(pid, &st, WNOHANG)
        if r == pid {
            let sig = st & 0x7f
            exitStatus = sig == 0 ? (st >> 8) & 0xff : 128 + sig
            drain()
            return true
        }
        return false
    }

    /// Waits until the child exits or `timeout` passes (then kills it).
    /// Does not wait for EOF on the pipes: a detached grandchild might hold them.
    func wait(timeout: Double) -> ProcessResult {
        let deadline = monotonicNow() + timeout
        var timedOut = false
        while !checkExited() {
            if monotonicNow() >= deadline {
                timedOut = true
                kill(pid, SIGKILL)
                var st: Int32 = 0
                waitpid(pid, &st, 0)
                exitStatus = 128 + SIGKILL
                break
            }
            pump(timeout: 0.02)
        }
        drain()
        return ProcessResult(
            command: command, status: exitStatus ?? -1, stdout: stdout, stderr: stderr, timedOut: timedOut)
    }

    /// Waits until stdout holds a complete line (returns it without `\n`), or nil at the deadline
    /// or when the child exits first.
    func readStdoutLine(timeout: Double) -> String? {
        let deadline = monotonicNow() + timeout
        while monotonicNow() < deadline {
            pump(timeout: 0.02)
            if let nl = stdout.firstIndex(of: 10) {
                return String(decoding: stdout[..<nl], as: UTF8.self)
            }
            if exitStatus != nil || checkExited() {
                if let nl = stdout.firstIndex(of: 10) { return String(decoding: stdout[..<nl], as: UTF8.self) }
                return nil
            }
        }
        return nil
    }
}

/// Runs a program to completion with a deadline.
func runProcess(
    _ path: String, _ args: [String], env: [String: String], stdin: [UInt8]? = nil, timeout: Double
) throws -> ProcessResult {
    let child = try ChildProcess(path, args, env: env, stdin: stdin)
    return child.wait(timeout: timeout)
}

/// Liveness of a process as the kernel sees it; a zombie counts as gone. When `startTime` is
/// given, a process with another start time (a recycled pid) also counts as gone.
func processIsAlive(_ pid: pid_t, startTime: String? = nil) -> Bool {
    guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return false }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // fields[0] is the state (field 3); field 22 (starttime) is fields[19].
    guard fields.count > 19 else { return false }
    if fields[0] == "Z" || fields[0] == "X" { return false }
    if let startTime, String(fields[19]) != startTime { return false }
    return true
}

/// Pids of live processes whose environment holds `entry` (e.g. `DIPC_RUNTIME_DIR=/tmp/x`)
/// or whose command line holds `argument`.
func processesMatching(environment entry: String?, argument: String?) -> [pid_t] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    var found: [pid_t] = []
    let me = getpid()
    for n in names {
        guard let pid = pid_t(n), pid != me else { continue }
        var hit = false
        if let entry, let env = FileManager.default.contents(atPath: "/proc/\(pid)/environ") {
            hit = env.split(separator: 0).contains { Array($0) == Array(entry.utf8) }
        }
        if !hit, let argument, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") {
            hit = cmd.split(separator: 0).contains { Array($0) == Array(argument.utf8) }
        }
        if hit && processIsAlive(pid) { found.append(pid) }
    }
    return found
}
