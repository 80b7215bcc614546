@preconcurrency import Glibc
import DIPCTestSupport

/// Idle connections (served, resident memory each) and the time `dipc` takes to be
/// ready and `dipcrm` to stop it.
enum Footprint {
    /// A Markdown section with the figures.
    static func measure(bin: String, scratch: String, idleConnections: Int) throws -> String {
        raiseDescriptorLimit(to: idleConnections + 64)
        let server = try DipcServer(bin: bin, scratch: scratch, backend: "sysv", label: "idle")
        defer { server.stop() }
        // One connection served first, so that lazily made state is not charged to the idle ones.
        let warm = try ProtocolClient(.dipc, port: server.port, keys: 1, valueSize: 64, verify: true, writer: 1)
        try warm.write(0)
        try warm.read(0)
        let threadsBefore = status(server.pid, "Threads") ?? 0
        let rssBefore = status(server.pid, "VmRSS") ?? 0
        var clients: [ProtocolClient] = []
        for i in 0..<idleConnections {
            clients.append(try ProtocolClient(.dipc, port: server.port, keys: 1, valueSize: 64, verify: true, writer: i + 2))
        }
        // Every connection has its thread once the thread count rose by that many.
        let deadline = now() + 30
        while (status(server.pid, "Threads") ?? 0) < threadsBefore + idleConnections && now() < deadline { usleep(10_000) }
        let threadsAfter = status(server.pid, "Threads") ?? 0
        let rssIdle = status(server.pid, "VmRSS") ?? 0
        // Each one served: a read on every connection.
        let began = now()
        for client in clients { try client.read(0) }
        let servedSeconds = now() - began
        let rssServed = status(server.pid, "VmRSS") ?? 0
        let perIdle = Double(rssIdle - rssBefore) / Double(idleConnections)
        let perServed = Double(rssServed - rssBefore) / Double(idleConnections)
        clients.removeAll()
        var timings: [String: (start: [Double], stop: [Double])] = [:]
        for _ in 0..<5 {
            for backend in ["sysv", "posix", "tdb"] {
                let timed = try DipcServer(bin: bin, scratch: scratch, backend: backend)
                timed.stop()
                timings[backend, default: ([], [])].start.append(timed.startSeconds * 1000)
                timings[backend, default: ([], [])].stop.append((timed.stopSeconds ?? .nan) * 1000)
            }
        }
        func median(_ v: [Double]) -> String { String(format1: v.sorted()[v.count / 2], digits: 1) }
        func maximum(_ v: [Double]) -> String { String(format1: v.max() ?? .nan, digits: 1) }
        var rows: [[String]] = []
        for backend in ["sysv", "posix", "tdb"] {
            let t = timings[backend]!
            rows.append([backend, median(t.start), maximum(t.start), median(t.stop), maximum(t.stop)])
        }
        return """
            \(idleConnections) idle connections to one dipc (sysv): all \(idleConnections) served (one `r 0` each, \
            \(String(format1: servedSeconds * 1000, digits: 0)) ms for all); server threads \(threadsBefore) → \(threadsAfter); \
            resident memory \(rssBefore / 1024) MiB → \(rssIdle / 1024) MiB idle → \(rssServed / 1024) MiB after serving: \
            \(String(format1: perIdle, digits: 1)) KiB per idle connection, \(String(format1: perServed, digits: 1)) KiB per \
            connection that has served a read.

            Start to ready (`dipc` returning) and `dipcrm`, 5 times each, ms:

            """ + renderTable(["backend", "start median", "start max", "dipcrm median", "dipcrm max"], rows, rightAligned: [1, 2, 3, 4])
    }

    /// A `kB` field of /proc/PID/status (or a plain count such as Threads).
    static func status(_ pid: pid_t, _ field: String) -> Int? {
        for line in TextFile.read("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix(field + ":") {
            return line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
        }
        return nil
    }

    static func raiseDescriptorLimit(to wanted: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(wanted) else { return }
        limit.rlim_cur = min(limit.rlim_max, rlim_t(wanted))
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
