import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// TDB: content lives until its file is deleted.
@Suite("tdb persistence", .requires(.tdbBackend))
struct TDBPersistenceTests {
    @Test("data and versions survive dipcrm + restart; the file is never deleted")
    func surviveRestart() throws {
        try withScope { scope in
            let db = scope.dir + "/store.tdb"
            let s = try scope.start("tdb", options: ["--db", db])
            #expect(s.db == db, "record db: \(s.record)")
            let c = try s.connect()
            try c.write(0, "zero")
            try c.write(1, [0, 10, 13, 255])
            #expect(try c.write(1, "final one") == 2)
            c.close()
            let rm = try scope.dipcrm(s.port)
            #expect(rm.status == 0, "\(rm)")
            #expect(IPC.exists(db), "dipcrm deleted \(db)")
            #expect(IPC.fileMode(db) == 0o600, "db mode")
            if let m = s.shmName { #expect(!IPC.exists(IPC.devShmPath(m)), "coordinator map \(m) left after dipcrm") }

            let s2 = try scope.start("tdb", options: ["--db", db])
            let c2 = try s2.connect()
            let (d0, v0) = try c2.read(0)
            let (d1, v1) = try c2.read(1)
            #expect(d0 == Array("zero".utf8) && v0 == 1, "mailbox 0 after restart: \(d0) v\(v0)")
            #expect(d1 == Array("final one".utf8) && v1 == 2, "mailbox 1 after restart: \(d1) v\(v1)")
            #expect(try c2.request("r 2") == "ok 0 0")
            #expect(try c2.write(1, "next") == 3, "version continues after restart")
            c2.close()
            #expect(try scope.dipcrm(s2.port).status == 0)
            #expect(IPC.exists(db))
        }
    }

    @Test("the default file is $DIPC_STATE_DIR/NAME.tdb and survives")
    func defaultPath() throws {
        try withScope { scope in
            let s = try scope.start("tdb")
            let expected = scope.stateDir + "/\(scope.name).tdb"
            #expect(IPC.exists(expected), "no \(expected); record db=\(s.db ?? "nil")")
            try s.connect().write(3, "kept")
            try #require(try scope.dipcrm(s.port).status == 0, "the server did not stop")
            #expect(IPC.exists(expected))
            let s2 = try scope.start("tdb")
            #expect(try s2.connect().read(3).data == Array("kept".utf8))
        }
    }

    @Test("acknowledged writes survive SIGKILL")
    func surviveKill() throws {
        try withScope { scope in
            let db = scope.dir + "/killed.tdb"
            let s = try scope.start("tdb", options: ["--db", db])
            let c = try s.connect()
            var g = SplitMix64()
            var last: [[UInt8]] = [[], [], [], []]
            var versions: [UInt64] = [0, 0, 0, 0]
            for i in 0..<40 {
                let m = i % 4
                let v = CheckedValue.make(length: Int.random(in: 8...4096, using: &g), using: &g)
                versions[m] = try c.write(m, v)
                last[m] = v
            }
            s.kill(SIGKILL)  // right after the last acknowledgement
            try #require(s.waitGone(timeout: 5), "pid \(s.pid) still alive after SIGKILL")
            let s2 = try scope.start("tdb", port: s.port, options: ["--db", db])
            let c2 = try s2.connect()
            for m in 0..<4 {
                let (d, v) = try c2.read(m)
                #expect(d == last[m] && v == versions[m], "mailbox \(m) after SIGKILL: \(d.count) bytes v\(v), acknowledged \(last[m].count) bytes v\(versions[m])")
            }
        }
    }

    @Test("SIGKILL during a stream of writes: every mailbox holds a whole acknowledged-or-later value")
    func killMidStream() throws {
        try withScope { scope in
            let db = scope.dir + "/stream.tdb"
            let s = try scope.start("tdb", options: ["--db", db])
            let port = s.port
            let acked = Locked<[UInt64]>([0, 0])
            // Thread t writes whole checked values to mailbox t until the server dies.
            let writers = LoadThreads(count: 2, port: { _ in port }, timeout: 5) { t, c in
                var g = SplitMix64()
                let ver = try c.write(t, CheckedValue.make(length: Int.random(in: 8...4096, using: &g), using: &g))
                acked.withValue { $0[t] = ver }
            }
            let running = writers.waitUntilEach(completed: 20, timeout: 30)
            if !running { writers.stop() }
            try #require(running, "writers not all running: \(writers.completed) \(writers.connectFailures + writers.operationErrors)")
            s.kill(SIGKILL)
            try #require(s.waitGone(timeout: 5), "pid \(s.pid) still alive after SIGKILL")
            // Their writes now fail (the server is gone): that is expected, not a failure.
            try #require(writers.stop(), "the writers did not stop once the server was dead")
            let s2 = try scope.start("tdb", port: port, options: ["--db", db])
            let c = try s2.connect()
            for m in 0..<2 {
                let (d, v) = try c.read(m)
                #expect(CheckedValue.problem(d) == nil, "mailbox \(m) torn after SIGKILL: \(CheckedValue.problem(d) ?? "")")
                #expect(v >= acked.get[m], "mailbox \(m): version \(v) < last acknowledged \(acked.get[m])")
            }
        }
    }

    @Test("two tdb servers on one file share it")
    func sharedFile() throws {
        try withScope { scope in
            let db = scope.dir + "/shared.tdb"
            let a = try scope.start("tdb", options: ["--db", db])
            let b = try scope.start("tdb", options: ["--db", db])
            try a.connect().write(0, "via a")
            #expect(try b.connect().read(0).data == Array("via a".utf8))
            try #require(try scope.dipcrm(a.port).status == 0, "A did not stop")
            #expect(try b.connect().write(0, "via b") == 2)
            #expect(try scope.dipcrm(b.port).status == 0)
            if let m = b.shmName { #expect(!IPC.exists(IPC.devShmPath(m)), "coordinator map left") }
            #expect(IPC.exists(db))
        }
    }

    @Test("a different geometry on an existing file is refused with both geometries named")
    func geometryOnFile() throws {
        try withScope { scope in
            let db = scope.dir + "/geo.tdb"
            let s = try scope.start("tdb", options: ["--db", db])
            try s.connect().write(0, "x")
            try #require(try scope.dipcrm(s.port).status == 0, "the server did not stop")
            let port = try freePort()
            let r = try scope.dipc(
                Scope.arguments(backend: "tdb", name: scope.name, options: ["--db", db], mailboxes: 8, mailboxKB: 4,
                    port: port, packetKB: 1))
            StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name], mentions: ["geometry"])
            #expect(r.err.contains("8") && r.err.contains("4"), "message should state both geometries: \(r)")
            let s2 = try scope.start("tdb", options: ["--db", db])
            #expect(try s2.connect().read(0).data == Array("x".utf8), "file damaged by the refused start")
        }
    }

    @Test("--sync: writes work and survive SIGKILL")
    func syncOption() throws {
        try withScope { scope in
            let db = scope.dir + "/sync.tdb"
            let s = try scope.start("tdb", options: ["--db", db, "--sync"])
            let c = try s.connect()
            for i in 1...5 { #expect(try c.write(2, "sync \(i)") == UInt64(i)) }
            s.kill(SIGKILL)
            try #require(s.waitGone(timeout: 5), "pid \(s.pid) still alive after SIGKILL")
            let s2 = try scope.start("tdb", port: s.port, options: ["--db", db])
            let (d, v) = try s2.connect().read(2)
            #expect(d == Array("sync 5".utf8) && v == 5)
        }
    }
}
