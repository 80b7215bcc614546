import DIPCCore
import Glibc

/// One server known to a runtime directory, as `dipc-client ls` shows it.
public struct RunningServer: Sendable {
    /// What `/proc` says about the process the record names.
    public enum State: String, Sendable {
        /// The recorded pid runs with the recorded start time.
        case running
        /// The process is gone (crashed or killed): `dipcrm PORT` cleans up after it.
        case dead
    }

    public let port: Int
    public let record: RuntimeRecord
    public let state: State
    /// Seconds since the process started (nil when it is dead or `/proc` cannot tell).
    public let uptimeSeconds: Int?

    public var pid: Int32? { record["pid"].flatMap { Int32($0) } }
    public var backend: String { record["backend"] ?? "?" }
    public var name: String { record["name"] ?? "?" }
    public var bind: String { record["bind"] ?? "127.0.0.1" }
    public var mailboxes: Int? { record["mailboxes"].flatMap { Int($0) } }
    public var mailboxSize: Int? { record["mailbox_size"].flatMap { Int($0) } }
    public var packetSize: Int? { record["packet_size"].flatMap { Int($0) } }
}

extension RuntimeDirectory {
    /// Every server with a record here (`dipc-PORT.record`, and the records of crashed
    /// servers whose port a new server took), sorted by port, each marked running or dead.
    /// A record that cannot be read or names no process is skipped. Never changes
    /// anything: cleaning up after a dead server is `dipcrm`'s job.
    public func runningServers() -> [RunningServer] {
        var ports = Set<Int>()
        for file in fileNames() where file.hasPrefix("dipc-") && file.hasSuffix(".record") {
            // dipc-PORT.record or dipc-PORT.crashed-PID.record
            let middle = file.dropFirst(5).dropLast(7)
            guard let port = Int(middle.prefix(while: { $0 != "." })), (1...65535).contains(port) else { continue }
            ports.insert(port)
        }
        return ports.sorted().flatMap { port in
            ([recordPath(port: port)] + crashedRecordPaths(port: port)).compactMap { path -> RunningServer? in
                guard let record = RuntimeRecord.read(from: path), let process = record.process else { return nil }
                let alive = process.isAlive
                return RunningServer(
                    port: port, record: record, state: alive ? .running : .dead,
                    uptimeSeconds: alive ? Self.secondsSinceStart(process) : nil)
            }
        }
    }

    /// Seconds since `process` started: system uptime minus its start time in clock ticks.
    static func secondsSinceStart(_ process: ProcessIdentity) -> Int? {
        guard let text = readSmallFile("/proc/uptime"),
            let uptime = Double(text.split(separator: " ").first ?? "")
        else { return nil }
        let ticks = sysconf(Int32(_SC_CLK_TCK))
        guard ticks > 0 else { return nil }
        return max(0, Int(uptime - Double(process.startTime) / Double(ticks)))
    }
}
