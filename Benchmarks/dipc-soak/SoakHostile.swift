@preconcurrency import Glibc
import DIPCTestSupport

/// The soak's hostile clients, beside the normal ones (SPEC §3 "Resources"): per server a
/// connection flood and stalled writers, and a monitor that samples every server's
/// threads and descriptors from /proc every 10 ms for the whole run and reports any
/// sample over the bounds (`--max-clients` + 32 threads, `--max-clients` + 64
/// descriptors). Stalled writers use their own mailbox, outside the plan's registers
/// and queues, so the normal clients' invariants are untouched.
enum SoakHostile {
    /// `--max-clients` of the soak's servers: room for the normal clients, the stalled
    /// writers and the connections a flood holds, so that the flood alone meets `err busy`.
    static let maxClients = 64
    /// Connections each flooder keeps open, unread, at a time (the rest it opens and closes at once).
    static let heldPerFlooder = 16
    /// Stalled writers per server.
    static let stalledWritersPerServer = 2
    /// How long a stalled writer stops mid-data: well under the default --io-timeout.
    static let stallSeconds = 1.0

    struct Report: Sendable {
        var floodConnections = 0
        var stalledWrites = 0
        var stalledAcknowledged = 0
        /// Stalled writes cut short (a server killed or busy): not a violation.
        var stalledCutShort = 0
        var samples = 0
        var peakThreads = 0
        var peakDescriptors = 0
        var peakResidentMiB = 0
        var violations: [String] = []

        mutating func merge(_ other: Report) {
            floodConnections += other.floodConnections
            stalledWrites += other.stalledWrites
            stalledAcknowledged += other.stalledAcknowledged
            stalledCutShort += other.stalledCutShort
            samples += other.samples
            peakThreads = max(peakThreads, other.peakThreads)
            peakDescriptors = max(peakDescriptors, other.peakDescriptors)
            peakResidentMiB = max(peakResidentMiB, other.peakResidentMiB)
            violations += other.violations
        }

        var figures: [(String, String)] {
            [("hostile: flood connections", "\(floodConnections)"),
             ("hostile: stalled writes (acknowledged / cut short)", "\(stalledWrites) (\(stalledAcknowledged) / \(stalledCutShort))"),
             ("hostile: peak threads, descriptors, VmRSS of a server (\(samples) samples)",
              "\(peakThreads) (bound \(maxClients + 32)), \(peakDescriptors) (bound \(maxClients + 64)), \(peakResidentMiB) MiB")]
        }
    }

    /// Connects as fast as it can to `port` until `deadline`, holding `heldPerFlooder`
    /// connections open and unread, closing the oldest as it goes.
    static func flood(port: Int, deadline: Double) -> Report {
        var report = Report()
        var held: [Int32] = []
        while now() < deadline {
            let fd = connectTo(port)
            guard fd >= 0 else {
                usleep(10_000)  // the server is being restarted
                continue
            }
            report.floodConnections += 1
            held.append(fd)
            if held.count > heldPerFlooder { close(held.removeFirst()) }
        }
        for fd in held { close(fd) }
        return report
    }

    /// Writes a whole mailbox to `mailbox` over and over until `deadline`, each time
    /// stopping `stallSeconds` before its last bytes; every write must be acknowledged
    /// unless its server is gone or busy.
    static func stalledWriter(port: Int, mailbox: Int, mailboxSize: Int, deadline: Double) -> Report {
        var report = Report()
        let tail = min(16, mailboxSize)
        let request = Array("w \(mailbox) \(mailboxSize)\n".utf8) + [UInt8](repeating: 0x5A, count: mailboxSize - tail)
        while now() < deadline {
            let fd = connectTo(port)
            guard fd >= 0 else {
                usleep(10_000)
                continue
            }
            defer { close(fd) }
            report.stalledWrites += 1
            guard sendAll(fd, request) else {
                report.stalledCutShort += 1
                continue
            }
            usleep(UInt32(stallSeconds * 1_000_000))
            guard sendAll(fd, [UInt8](repeating: 0x5A, count: tail)), let reply = readLine(fd) else {
                report.stalledCutShort += 1
                continue
            }
            if reply.hasPrefix("ok ") {
                report.stalledAcknowledged += 1
            } else if reply.hasPrefix("err busy") || reply.hasPrefix("err shutdown") {
                report.stalledCutShort += 1
            } else {
                report.violations.append("a stalled write to mailbox \(mailbox) on port \(port) was answered \"\(reply)\"")
            }
        }
        return report
    }

    /// Samples every server's threads, descriptors and VmRSS every 10 ms until `deadline`.
    static func monitor(servers: SoakServers, deadline: Double) -> Report {
        var report = Report()
        while now() < deadline {
            for port in servers.ports {
                guard let (pid, _) = servers.process(port), let sample = sample(pid) else { continue }
                report.samples += 1
                report.peakThreads = max(report.peakThreads, sample.threads)
                report.peakDescriptors = max(report.peakDescriptors, sample.descriptors)
                report.peakResidentMiB = max(report.peakResidentMiB, sample.residentKiB / 1024)
                if sample.threads >= maxClients + 32 || sample.descriptors >= maxClients + 64, report.violations.count < 10 {
                    report.violations.append("server on port \(port) had \(sample.threads) threads and \(sample.descriptors) descriptors (bounds \(maxClients + 32), \(maxClients + 64))")
                }
            }
            usleep(10_000)
        }
        return report
    }

    // MARK: - plumbing

    private static func sample(_ pid: pid_t) -> (threads: Int, descriptors: Int, residentKiB: Int)? {
        let status = TextFile.read("/proc/\(pid)/status")
        guard !status.isEmpty, let dir = opendir("/proc/\(pid)/fd") else { return nil }
        var descriptors = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { descriptors += 1 }
        }
        closedir(dir)
        var threads = 0, resident = 0
        for line in status.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { continue }
            if fields[0] == "Threads:" { threads = Int(fields[1]) ?? 0 }
            if fields[0] == "VmRSS:" { resident = Int(fields[1]) ?? 0 }
        }
        return (threads, descriptors, resident)
    }

    /// A blocking TCP socket connected to 127.0.0.1:`port`, with 10 s send and receive
    /// timeouts (connect included), or -1.
    private static func connectTo(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            close(fd)
            return -1
        }
        return fd
    }

    private static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            guard sent > 0 else { return false }
            offset += sent
        }
        return true
    }

    /// One reply line (without `\n`), or nil when the connection ends or stays silent 10 s.
    private static func readLine(_ fd: Int32) -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 512 {
            let count = recv(fd, &byte, 1, 0)
            if count < 0 && errno == EINTR { continue }
            guard count == 1 else { return nil }
            if byte == 0x0A { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return nil
    }
}
