import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A process's threads, open descriptors and resident memory, from /proc.
struct ProcessResources: CustomStringConvertible {
    var threads = 0
    var descriptors = 0
    /// VmRSS, in bytes.
    var residentBytes = 0

    /// Now, or nil when the process is gone.
    static func of(_ pid: pid_t) -> ProcessResources? {
        guard let status = procFile("/proc/\(pid)/status"), let descriptors = descriptorCount(pid) else { return nil }
        var out = ProcessResources(descriptors: descriptors)
        for line in status.split(separator: "\n") {
            // "Threads:\t5", "VmRSS:\t   13000 kB": fields apart by tabs and spaces.
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            if fields[0] == "Threads:" { out.threads = Int(fields[1]) ?? 0 }
            if fields[0] == "VmRSS:" { out.residentBytes = (Int(fields[1]) ?? 0) * 1024 }
        }
        return out
    }

    /// Entries of /proc/PID/fd.
    static func descriptorCount(_ pid: pid_t) -> Int? {
        guard let dir = opendir("/proc/\(pid)/fd") else { return nil }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    /// Descriptors of `pid` that a sanitizer's symbolizer holds, not the server: under
    /// `make tsan`/`make asan` a server that checks a report against the suppressions
    /// starts `llvm-symbolizer` as its child and keeps a pipe to each of its ends (2).
    static func sanitizerDescriptors(_ pid: pid_t) -> Int {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return 0 }
        var symbolizers = 0
        for task in tasks {
            for child in (procFile("/proc/\(pid)/task/\(task)/children") ?? "").split(separator: " ") {
                let name = procFile("/proc/\(child)/comm")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
                if name.hasPrefix("llvm-symbolizer") { symbolizers += 1 }
            }
        }
        return 2 * symbolizers
    }

    /// Now, without `sanitizerDescriptors` (for comparisons with a baseline taken before
    /// any sanitizer report), or nil when the process is gone.
    static func ownedBy(_ pid: pid_t) -> ProcessResources? {
        guard var now = of(pid) else { return nil }
        now.descriptors -= sanitizerDescriptors(pid)
        return now
    }

    /// The larger of each field.
    func peak(with other: ProcessResources) -> ProcessResources {
        ProcessResources(threads: max(threads, other.threads), descriptors: max(descriptors, other.descriptors),
                         residentBytes: max(residentBytes, other.residentBytes))
    }

    var description: String {
        "\(threads) threads, \(descriptors) descriptors, VmRSS \(residentBytes >> 20) MiB"
    }
}

/// Samples a process's resources every 10 ms on its own thread and keeps the peaks,
/// until `stop()`. `resetPeak()` starts a new peak (for one phase of a test).
final class ResourceSampler: @unchecked Sendable {
    private let pid: pid_t
    private let state = Mutex<(peak: ProcessResources, samples: Int, running: Bool)>((ProcessResources(), 0, true))
    private let finished = DispatchSemaphore(value: 0)

    init(pid: pid_t) {
        self.pid = pid
        let thread = Thread { [self] in
            while state.withLock({ $0.running }) {
                if let now = ProcessResources.of(pid) {
                    state.withLock { $0.peak = $0.peak.peak(with: now); $0.samples += 1 }
                }
                usleep(10_000)
            }
            finished.signal()
        }
        thread.start()
    }

    /// The peaks since the start or the last `resetPeak()`, and how many samples they come from.
    var peak: (resources: ProcessResources, samples: Int) { state.withLock { ($0.peak, $0.samples) } }

    func resetPeak() { state.withLock { $0.peak = ProcessResources(); $0.samples = 0 } }

    /// Ends sampling; returns the peaks.
    @discardableResult
    func stop() -> ProcessResources {
        state.withLock { $0.running = false }
        _ = finished.wait(timeout: .now() + 5)
        return peak.resources
    }
}

/// A TCP socket connected to 127.0.0.1:`port` (blocking, close-on-exec), or -1 when
/// connecting fails or takes more than `timeoutMilliseconds` (a full listen queue).
func rawConnect(_ port: Int, timeoutMilliseconds: Int = 200) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))  // bounds connect
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    if rc != 0 {
        close(fd)
        return -1
    }
    return fd
}
