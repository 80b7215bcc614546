import Glibc

/// A process named so that a recycled pid is never mistaken for it: its pid and
/// its start time (field 22 of `/proc/PID/stat`, clock ticks since boot).
public struct ProcessIdentity: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let pid: Int32
    public let startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The calling process.
    public static func current() -> ProcessIdentity {
        let pid = getpid()
        return ProcessIdentity(pid: pid, startTime: startTime(of: pid) ?? 0)
    }

    /// What `/proc` says about a pid.
    public enum Lookup: Equatable, Sendable {
        /// Running, with this start time.
        case running(startTime: UInt64)
        /// No such process, or a zombie.
        case gone
        /// Could not tell (e.g. out of file descriptors): callers must assume it runs.
        case unknown
    }

    /// Looks `pid` up. Only a definite answer ("no such process", "zombie") is `.gone`.
    public static func lookup(_ pid: Int32) -> Lookup {
        guard pid > 0 else { return .gone }
        if kill(pid, 0) != 0 && errno == ESRCH { return .gone }
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return errno == ENOENT || errno == ESRCH ? .gone : .unknown }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        let readError = errno
        close(fd)
        guard count > 0 else { return readError == ESRCH ? .gone : .unknown }
        let stat = String(decoding: bytes[0..<count], as: UTF8.self)
        // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return .unknown }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19, let start = UInt64(fields[19]) else { return .unknown }
        if fields[0] == "Z" || fields[0] == "X" { return .gone }
        return .running(startTime: start)
    }

    /// The start time of `pid`, or nil when it is not running or cannot be read.
    public static func startTime(of pid: Int32) -> UInt64? {
        if case let .running(start) = lookup(pid) { return start }
        return nil
    }

    /// Whether this exact process (same pid, same start time) may still be running:
    /// false only when `/proc` says definitely not (gone, zombie, or another start time).
    public var isAlive: Bool {
        switch ProcessIdentity.lookup(pid) {
        case let .running(start): return start == startTime
        case .gone: return false
        case .unknown: return true
        }
    }

    public var description: String { "pid \(pid)" }
}

/// Reads a small text file (at most 64 KiB) whole, or nil when it cannot be read.
public func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 65536 {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
