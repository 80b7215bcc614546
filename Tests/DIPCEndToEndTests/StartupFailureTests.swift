import Foundation
import Testing

/// Start-up failures: non-zero exit, one line on stderr, and nothing left behind.
@Suite("start-up failures")
struct StartupFailureTests {
    /// Checks a failed `dipc` run: non-zero, one stderr line, no process, no record, no IPC object.
    static func expectCleanFailure(
        _ r: ProcessResult, scope: Scope, port: Int?, names: [String], mentions: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(r.status != 0 && !r.timedOut, "should fail: \(r)", sourceLocation: sourceLocation)
        let lines = r.err.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(
            r.err.hasSuffix("\n") && lines.count == 2 && !lines[0].isEmpty,
            "stderr should be exactly one line: \(r)", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(r.err.lowercased().contains(word), "stderr should mention \(word): \(r)", sourceLocation: sourceLocation)
        }
        waitUntil(timeout: 3) {
            processesMatching(environment: "DIPC_RUNTIME_DIR=\(scope.runtimeDir)", argument: nil).isEmpty
        }
        let procs = processesMatching(environment: "DIPC_RUNTIME_DIR=\(scope.runtimeDir)", argument: nil)
        #expect(procs.isEmpty, "processes left after a failed start: \(procs) (\(r.command.joined(separator: " ")))", sourceLocation: sourceLocation)
        if let port {
            #expect(!IPC.exists(scope.recordPath(port)), "record left after a failed start: \(r)", sourceLocation: sourceLocation)
        }
        for n in names {
            let objs = IPC.storeObjects(name: n)
            #expect(objs.isEmpty, "IPC objects left after a failed start: \(objs) (\(r.command.joined(separator: " ")))", sourceLocation: sourceLocation)
        }
    }

    static let badArgumentLists: [[String]] = [
        ["0", "4", "PORT", "1"], ["abc", "4", "PORT", "1"], ["-1", "4", "PORT", "1"], ["+4", "4", "PORT", "1"],
        ["4.5", "4", "PORT", "1"], ["4", "4", "PORT", "0"], ["4", "0", "PORT", "1"], ["4", "-4", "PORT", "1"],
        ["4", "4", "0", "1"], ["4", "4", "70000", "1"], ["4", "4", "PORT"], ["4", "4", "PORT", "1", "5"],
        ["4", "4", "PORT", "1", "--name", "-x"], ["4", "4", "PORT", "1", "--name=-x"],
        ["4", "4", "PORT", "1", "--name", String(repeating: "a", count: 65)],
        ["4", "4", "PORT", "1", "--name", "a/b"], ["4", "4", "PORT", "1", "--name", ""],
        ["4", "4", "PORT", "1", "--name", ".abc"],
        ["4", "4", "PORT", "1", "--backend", "nosuch"], ["4", "4", "PORT", "1", "--coordinator", "nosuch"],
        ["4", "4", "PORT", "1", "--io-timeout", "0"], ["4", "4", "PORT", "1", "--max-clients", "0"],
        ["4", "4", "PORT", "1", "--max-clients", "-1"], ["4", "4", "PORT", "1", "--io-timeout", "x"],
        ["4", "4", "PORT", "1", "--no-such-option"], ["4", "4", "PORT", "1", "--bind", "999.1.1.1"],
        ["4", "4", "PORT", "1", "--bind", "no.such.host.invalid"], ["4", "4", "PORT", "1", "--bind", "192.0.2.1"],
    ]

    @Test("bad arguments fail cleanly", arguments: badArgumentLists)
    func badArguments(_ template: [String]) throws {
        try withScope { scope in
            let port = try freePort()
            var args = template.map { $0 == "PORT" ? "\(port)" : $0 }
            if !template.contains(where: { $0.hasPrefix("--name") }) { args = ["--name", scope.name] + args }
            let r = try scope.dipc(args)
            Self.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(!portAccepts(port), "port \(port) serves after a failed start")
        }
    }

    @Test("a name of exactly 64 characters is accepted", arguments: E2E.builtBackends)
    func name64(backend: String) throws {
        try withScope { scope in
            let base = scope.newName()
            let name = base + String(repeating: "z", count: 64 - base.count)
            scope.adopt(name: name)
            let s = try scope.start(backend, name: name)
            #expect(try s.connect().request("r 0") == "ok 0 0")
        }
    }

    @Test("port already in use fails cleanly", arguments: E2E.builtBackends)
    func portInUse(backend: String) throws {
        try withScope { scope in
            let blocker = try PortBlocker()
            let r = try scope.dipc(
                Scope.arguments(backend: backend, name: scope.name, options: [], mailboxes: 4, mailboxKB: 4,
                    port: blocker.port, packetKB: 1))
            Self.expectCleanFailure(r, scope: scope, port: blocker.port, names: [scope.name])
        }
    }

    @Test("port used by another dipc fails cleanly and leaves that server alone", arguments: E2E.builtBackends)
    func portUsedByDipc(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            try a.connect().write(0, "mine")
            let other = scope.newName()
            let r = try scope.dipc(
                Scope.arguments(backend: backend, name: other, options: [], mailboxes: 4, mailboxKB: 4,
                    port: a.port, packetKB: 1))
            #expect(r.status != 0, "\(r)")
            #expect(IPC.storeObjects(name: other).isEmpty, "\(IPC.storeObjects(name: other))")
            #expect(scope.readRecord(a.port)?["pid"] == a.record["pid"], "the running server's record was replaced")
            #expect(try a.connect().read(0).data == Array("mine".utf8))
        }
    }

    @Test("same --name, different geometry: the second server fails, the first is untouched", arguments: E2E.builtBackends)
    func geometryMismatch(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            try a.connect().write(2, "data")
            for (m, kb) in [(8, 4), (4, 8), (2, 4)] {
                let port = try freePort()
                let r = try scope.dipc(
                    Scope.arguments(backend: backend, name: scope.name, options: [], mailboxes: m, mailboxKB: kb,
                        port: port, packetKB: 1))
                #expect(r.status != 0, "\(m) mailboxes of \(kb) KiB on a 4x4 KiB store: \(r)")
                #expect(r.err.lowercased().contains("geometry"), "message should mention geometry: \(r)")
                #expect(r.err.filter { $0 == "\n" }.count == 1, "one line on stderr: \(r)")
                #expect(!IPC.exists(scope.recordPath(port)), "record left for the failed server")
                #expect(!portAccepts(port))
            }
            #expect(a.isAlive)
            let (d, v) = try a.connect().read(2)
            #expect(d == Array("data".utf8) && v == 1, "first server's data after failed attaches")
            #expect(!a.storeObjects().isEmpty, "the failed attach removed the store")
        }
    }

    @Test("same --name, different packet size is fine (packet size is per server)", arguments: E2E.builtBackends)
    func packetSizePerServer(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend, packetKB: 1)
            let b = try scope.start(backend, packetKB: 2)
            try a.connect().write(0, "shared")
            #expect(try b.connect().read(0).data == Array("shared".utf8))
            #expect(keyValues(try b.connect().request("i"))["packet_size"] == "2048")
        }
    }

    @Test("same --name, different coordinator: the second server fails", arguments: E2E.builtBackends)
    func coordinatorMismatch(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend, options: ["--coordinator", "fifo"])
            let port = try freePort()
            let r = try scope.dipc(
                Scope.arguments(backend: backend, name: scope.name, options: ["--coordinator", "phase-fair"],
                    mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            #expect(r.status != 0, "fifo store attached with phase-fair: \(r)")
            #expect(r.err.lowercased().contains("coordinator"), "message should mention the coordinator: \(r)")
            #expect(!IPC.exists(scope.recordPath(port)))
            #expect(try a.connect().request("r 0") == "ok 0 0")
        }
    }

    @Test("tdb: the file keeps its coordinator; another one fails even with no server running", .requires(.tdbBackend))
    func tdbCoordinatorPersists() throws {
        try withScope { scope in
            let a = try scope.start("tdb", options: ["--coordinator", "fifo"])
            #expect(try a.connect().write(0, "kept") == 1)
            try #require(try scope.dipcrm(a.port).status == 0, "the server did not stop")
            let port = try freePort()
            let r = try scope.dipc(
                Scope.arguments(backend: "tdb", name: scope.name, options: ["--coordinator", "phase-fair"],
                    mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            Self.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(r.err.contains("fifo coordinator"), "message should name the store's coordinator: \(r)")
            let b = try scope.start("tdb", port: port, options: ["--coordinator", "fifo"])
            #expect(try b.connect().read(0) == (Array("kept".utf8), 1), "the store after the refused start")
        }
    }

    @Test("a geometry too large for the backend fails cleanly", arguments: E2E.builtBackends)
    func geometryTooLarge(backend: String) throws {
        try withScope { scope in
            let port = try freePort()
            // 2^20 mailboxes of 2^20 KiB: 1 PiB.
            let r = try scope.dipc(
                Scope.arguments(backend: backend, name: scope.name, options: [], mailboxes: 1 << 20,
                    mailboxKB: 1 << 20, port: port, packetKB: 1))
            Self.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
        }
    }

    @Test("tdb: --db in a missing directory fails cleanly", .requires(.tdbBackend))
    func tdbMissingDirectory() throws {
        try withScope { scope in
            let port = try freePort()
            let db = scope.dir + "/no/such/dir/x.tdb"
            let r = try scope.dipc(
                Scope.arguments(backend: "tdb", name: scope.name, options: ["--db", db], mailboxes: 4, mailboxKB: 4,
                    port: port, packetKB: 1))
            Self.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(!IPC.exists(db))
        }
    }

    @Test("tdb: a corrupt file fails cleanly and is not overwritten", .requires(.tdbBackend))
    func tdbCorrupt() throws {
        try withScope { scope in
            let port = try freePort()
            let db = scope.dir + "/corrupt.tdb"
            let garbage = Data(repeating: 0x5A, count: 8192)
            _ = FileManager.default.createFile(atPath: db, contents: garbage)
            let r = try scope.dipc(
                Scope.arguments(backend: "tdb", name: scope.name, options: ["--db", db], mailboxes: 4, mailboxKB: 4,
                    port: port, packetKB: 1))
            Self.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(FileManager.default.contents(atPath: db) == garbage, "corrupt file was modified")
        }
    }
}
