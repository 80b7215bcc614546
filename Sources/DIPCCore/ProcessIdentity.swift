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

    /// The start time of `pid`, or nil when no such process exists (or it is a zombie).
    public static func startTime(of pid: Int32) -> UInt64? {
        guard pid > 0, let stat = readSmallFile("/proc/\(pid)/stat") else { return nil }
        // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        if fields[0] == "Z" || fields[0] == "X" { return nil }
        return UInt64(fields[19])
    }

    /// Whether this exact process (same pid, same start time) is still running.
    public var isAlive: Bool {
        ProcessIdentity.startTime(of: pid) == startTime
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
