import DIPCCore
import Glibc

/// The number of threads the kernel counts in this process (`num_threads` of
/// /proc/self/stat, the `Threads:` line of /proc/self/status).
///
/// This counts what `pthread_join` cannot see: a joined thread's task can stay in the
/// process for a while after the join returns (the C library is woken when the kernel
/// clears the thread id, before the kernel has finished tearing the task down), and
/// under a connection flood on a loaded machine such tasks pile up.
final class ProcessThreadCount: Sendable {
    private let fd: Int32

    /// Opens /proc/self/stat, kept open so that each `current()` is one `pread`.
    init() throws {
        fd = try systemCall("open /proc/self/stat") { open("/proc/self/stat", O_RDONLY | O_CLOEXEC) }
    }

    deinit { closeDescriptor(fd) }

    /// The process's threads now, or nil when /proc cannot be read or parsed.
    func current() -> Int? {
        var buffer = [UInt8](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Self.threads(inStat: buffer[..<count])
    }

    /// `num_threads` (field 20) of a /proc/PID/stat line: the fields after the command
    /// name, which is in parentheses and may itself contain spaces and parentheses.
    static func threads(inStat line: ArraySlice<UInt8>) -> Int? {
        guard let close = line.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = line[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state); num_threads is field 20.
        guard fields.count > 17 else { return nil }
        return Int(String(decoding: fields[17], as: UTF8.self))
    }
}
