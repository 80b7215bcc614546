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
        do {
            try systemCall("kill(0)") { kill(pid, 0) }
        } catch let error as SystemError where error.errno == .noSuchProcess {
            return .gone
        } catch {
            // EPERM: it exists but belongs to another user; /proc still answers.
        }
        let fd: Int32
        do {
            fd = try systemCall("open") { open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC) }
        } catch let error as SystemError {
            return [.noSuchFileOrDirectory, .noSuchProcess].contains(error.errno) ? .gone : .unknown
        } catch {
            return .unknown
        }
        defer { closeDescriptor(fd) }
        var bytes = [UInt8](repeating: 0, count: 1024)
        let count: Int
        do {
            count = try bytes.withUnsafeMutableBytes { raw in try systemCall("read") { read(fd, raw.baseAddress, raw.count) } }
        } catch let error as SystemError {
            return error.errno == .noSuchProcess ? .gone : .unknown
        } catch {
            return .unknown
        }
        guard count > 0 else { return .unknown }
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
    guard let fd = try? systemCall("open", { open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
    defer { closeDescriptor(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while bytes.count < 65536 {
        guard let n = try? chunk.withUnsafeMutableBytes({ raw in try systemCall("read") { read(fd, raw.baseAddress, raw.count) } })
        else { return nil }
        if n == 0 { break }
        bytes.append(contentsOf: chunk[0..<n])
    }
    return String(decoding: bytes, as: UTF8.self)
}
