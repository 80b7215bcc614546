import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §3 Access: loopback by default, owner-only files and IPC objects, and a
/// `dipcrm` that touches nothing of another user's. (Record, segment, POSIX object,
/// TDB file and coordinator map modes are checked in StartStopTests.)
@Suite("access")
struct AccessTests {
    /// Local addresses (hex, as /proc/net/tcp* print them) of sockets listening on `port`.
    static func listeningAddresses(port: Int) -> [String] {
        var out: [String] = []
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = procFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3, fields[3] == "0A" else { continue }  // LISTEN
                let local = fields[1].split(separator: ":")
                if local.count == 2, Int(local[1], radix: 16) == port { out.append(String(local[0])) }
            }
        }
        return out
    }

    @Test("by default the server listens on 127.0.0.1 only", arguments: E2E.builtBackends.prefix(1))
    func loopbackOnly(backend: String) throws {
        try withServer(backend) { server, _ in
            let addresses = Self.listeningAddresses(port: server.port)
            #expect(addresses == ["0100007F"], "listening sockets on port \(server.port): \(addresses) (0100007F is 127.0.0.1)")
            #expect(server.record["bind"] == "127.0.0.1")
        }
    }

    @Test("runtime files are 0600 in a 0700 directory; no semaphore set that is not 0600", arguments: E2E.builtBackends)
    func ownerOnlyFiles(backend: String) throws {
        try withServer(backend) { server, scope in
            _ = try server.connect().request("x")  // something for the log
            #expect(IPC.fileMode(scope.runtimeDir) == 0o700, "runtime dir mode")
            let log = scope.runtimeDir + "/dipc-\(server.port).log"
            #expect(IPC.exists(log), "no log file \(log)")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: scope.runtimeDir)) ?? []
            #expect(!files.isEmpty)
            for file in files {
                let mode = IPC.fileMode(scope.runtimeDir + "/" + file)
                #expect(mode == 0o600, "\(file) mode \(String(mode ?? -1, radix: 8))")
            }
            for sem in IPC.semaphores() where sem.key == IPC.key(server.name) {
                #expect(sem.perms & 0o777 == 0o600, "\(sem)")
            }
            if let db = server.db { #expect(IPC.fileMode(db) == 0o600, "db \(db)") }
        }
    }

    static let otherUID: uid_t = 65534

    /// Replaces `key=...` lines of a runtime record.
    static func patchRecord(_ path: String, _ values: [String: String]) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n").map { line -> String in
            guard let eq = line.firstIndex(of: "="), let value = values[String(line[..<eq])] else { return String(line) }
            return String(line[..<eq]) + "=" + value
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// Field 22 of /proc/PID/stat.
    static func startTime(_ pid: pid_t) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    @Test("dipcrm refuses a live server of another user (pid and start time right)", .requires(.root), arguments: E2E.builtBackends.prefix(1))
    func dipcrmRefusesOtherUsersServer(backend: String) throws {
        try withScope { scope in
            let s = try scope.start(backend)
            s.kill(SIGKILL)
            try #require(s.waitGone(timeout: 5), "pid \(s.pid) still alive after SIGKILL")
            // The record now names a live process of uid 65534, start time included.
            let foreign = try ChildProcess(
                "/usr/bin/setpriv", ["--reuid=\(Self.otherUID)", "--regid=\(Self.otherUID)", "--clear-groups", "/bin/sleep", "60"],
                env: scope.env)
            defer {
                kill(foreign.pid, SIGKILL)
                _ = foreign.wait(timeout: 5)
            }
            var start: String?
            try #require(waitUntil(timeout: 5) {
                start = Self.startTime(foreign.pid)
                return (try? FileManager.default.attributesOfItem(atPath: "/proc/\(foreign.pid)")[.ownerAccountID] as? NSNumber)?.uint32Value == Self.otherUID
            }, "pid \(foreign.pid) never ran as uid \(Self.otherUID)")
            let path = scope.recordPath(s.port)
            let original = try String(contentsOfFile: path, encoding: .utf8)
            try Self.patchRecord(path, ["pid": "\(foreign.pid)", "start_time": try #require(start)])
            let rm = try scope.dipcrm(s.port)
            #expect(rm.status == 1, "\(rm)")
            #expect(rm.err.contains("belongs to uid \(Self.otherUID)") && rm.err.hasSuffix("\n") && rm.err.split(separator: "\n").count == 1, "\(rm)")
            #expect(!foreign.checkExited(), "dipcrm signalled another user's process \(foreign.pid)")
            #expect(IPC.exists(path), "dipcrm removed another user's server's record")
            // Put the crashed server's record back: the scope's cleanup removes its store.
            try original.write(toFile: path, atomically: false, encoding: .utf8)
            let cleanup = try scope.dipcrm(s.port)
            #expect(cleanup.status == 0, "\(cleanup)")
        }
    }

    @Test("dipcrm refuses a runtime record owned by another user and leaves its server alone", .requires(.root), arguments: E2E.builtBackends.prefix(1))
    func dipcrmRefusesOtherUsersRecord(backend: String) throws {
        try withServer(backend) { server, scope in
            let path = scope.recordPath(server.port)
            try #require(chown(path, Self.otherUID, Self.otherUID) == 0, "chown: errno \(errno)")
            let rm = try scope.dipcrm(server.port)
            #expect(rm.status == 1, "\(rm)")
            #expect(rm.err.contains("belongs to uid \(Self.otherUID)"), "\(rm)")
            #expect(server.isAlive, "dipcrm stopped a server whose record belongs to another user")
            #expect(try server.connect().request("r 0") == "ok 0 0")
            #expect(chown(path, geteuid(), getegid()) == 0)
        }
    }
}
