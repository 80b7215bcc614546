import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Starting and stopping a server: `dipc`, `dipcrm`, signals, `--foreground`.
@Suite("start and stop")
struct StartStopTests {
    @Test("dipc 4 4 PORT 1 starts, serves, reports itself; dipcrm removes everything", arguments: E2E.builtBackends)
    func startServeStop(backend: String) throws {
        try withScope { scope in
            let port = try freePort()
            let args = try Scope.arguments(
                backend: backend, name: scope.name, options: [], mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1)
            let r = try scope.dipc(args)
            try #require(r.status == 0, "\(r)")
            // One line on stdout naming pid, backend and port.
            #expect(r.out.hasSuffix("\n") && r.out.filter { $0 == "\n" }.count == 1, "stdout must be one line: \(r)")
            let line = r.out.trimmingCharacters(in: .newlines)
            #expect(line.contains("backend \(backend)"), "start-up line: \(line)")
            #expect(line.contains("127.0.0.1:\(port)"), "start-up line: \(line)")
            let record = try #require(scope.readRecord(port), "no record \(scope.recordPath(port))")
            let pid = try #require(record["pid"], "record without pid: \(record)")
            #expect(line.contains("pid \(pid)"), "start-up line \(line) vs record pid \(pid)")
            #expect(
                line == "dipc: serving 4 mailboxes of 4096 bytes on 127.0.0.1:\(port) (backend \(backend), name \(scope.name), coordinator fifo, pid \(pid))",
                "start-up line differs from CONVENTIONS.md: \(line)")

            // The record, as CONVENTIONS.md lists it.
            for key in ["pid", "start_time", "port", "bind", "backend", "name", "mailboxes", "mailbox_size",
                "packet_size", "coordinator"]
            {
                #expect(record[key] != nil, "record lacks `\(key)`: \(record)")
            }
            #expect(record["port"] == "\(port)" && record["backend"] == backend && record["name"] == scope.name)
            #expect(record["bind"] == "127.0.0.1", "default bind: \(record)")
            #expect(IPC.fileMode(scope.recordPath(port)) == 0o600, "record mode must be 0600")
            #expect(IPC.fileMode(scope.runtimeDir) == 0o700, "runtime dir mode must be 0700")

            let server = Server(port: port, backend: backend, name: scope.name, startLine: line, record: record)
            #expect(server.isAlive, "recorded pid \(pid) is not a live process")
            // The harness must find the server by its private runtime dir (start-up failure checks rely on it).
            let found = processesMatching(environment: "DIPC_RUNTIME_DIR=\(scope.runtimeDir)", argument: nil)
            #expect(found == [server.pid], "processes carrying this test's DIPC_RUNTIME_DIR: \(found), server pid \(server.pid)")

            // Serves immediately after dipc exits 0 (no polling).
            let c = try server.connect()
            let info = try c.request("i")
            #expect(info.hasPrefix("ok dipc/1 "), "i -> \(info)")
            let f = keyValues(info)
            #expect(f["backend"] == backend, "i -> \(info)")
            #expect(f["name"] == scope.name, "i -> \(info)")
            #expect(f["mailboxes"] == "4", "i -> \(info)")
            #expect(f["mailbox_size"] == "4096", "i -> \(info)")
            #expect(f["packet_size"] == "1024", "i -> \(info)")
            #expect(f["coordinator"] == "fifo", "i -> \(info)")
            try c.write(1, "x")
            c.close()

            // Owner-only IPC objects.
            switch backend {
            case "sysv":
                let id = try #require(server.shmID, "sysv record lacks shm_id: \(record)")
                let seg = try #require(IPC.segments().first { $0.id == id }, "no sysv segment with recorded id \(id)")
                #expect(seg.key == IPC.key(scope.name), "segment key should be FNV-1a(\"dipc:\"+name): \(seg)")
                #expect(seg.perms & 0o777 == 0o600, "segment perms: \(seg)")
            case "posix":
                let path = "/dev/shm/dipc.\(scope.name)"
                #expect(IPC.fileMode(path) == 0o600, "\(path) mode \(String(describing: IPC.fileMode(path)))")
            case "tdb":
                let db = try #require(server.db, "tdb record lacks db: \(record)")
                #expect(db == scope.stateDir + "/\(scope.name).tdb" || db.hasSuffix("/\(scope.name).tdb"), "default db path: \(db)")
                #expect(IPC.fileMode(db) == 0o600, "db \(db) mode \(String(describing: IPC.fileMode(db)))")
                let shm = try #require(server.shmName, "tdb record lacks shm_name (coordinator map): \(record)")
                #expect(IPC.fileMode(IPC.devShmPath(shm)) == 0o600, "coordinator map \(shm) missing or not 0600")
            default: break
            }

            let rm = try scope.dipcrm(port)
            #expect(rm.status == 0, "\(rm)")
            let left = leftovers(of: server, in: scope)
            if !left.isEmpty {
                waitUntil(timeout: 5) { leftovers(of: server, in: scope).isEmpty }
            }
            #expect(left.isEmpty, "left right after `dipcrm \(port)` exited 0: \(left)")
            #expect(leftovers(of: server, in: scope).isEmpty, "still left 5 s after dipcrm: \(leftovers(of: server, in: scope))")
            if backend == "tdb", let db = server.db {
                #expect(IPC.exists(db), "dipcrm deleted the TDB file \(db)")
            }
        }
    }

    @Test("dipcrm on a port with no server: exit 1, exact message")
    func dipcrmNothing() throws {
        try withScope { scope in
            let port = try freePort()
            let r = try scope.dipcrm(port)
            #expect(r.status == 1, "\(r)")
            #expect(r.err == "dipcrm: no dipc server on port \(port)\n", "\(r)")
        }
    }

    @Test("dipcrm with bad usage fails non-zero")
    func dipcrmBadUsage() throws {
        try withScope { scope in
            for args in [[], ["abc"], ["0"], ["70000"]] {
                let r = try scope.dipcrm(args)
                #expect(r.status != 0, "\(r)")
                #expect(!r.err.isEmpty, "\(r)")
            }
        }
    }

    @Test(
        "SIGTERM / SIGINT stop the server like dipcrm",
        arguments: E2E.builtBackends, [SIGTERM, SIGINT])
    func signalStops(backend: String, signal: Int32) throws {
        try withScope { scope in
            let server = try scope.start(backend)
            let idle = try server.connect()
            try idle.write(0, "v")
            server.kill(signal)
            #expect(server.waitGone(timeout: 10), "pid \(server.pid) still alive 10 s after signal \(signal)")
            // The idle client is told and closed.
            let line = try? idle.readLine()
            #expect(line?.hasPrefix("err shutdown") == true, "idle client got \(String(describing: line)) after signal \(signal)")
            waitUntil(timeout: 5) { leftovers(of: server, in: scope).isEmpty }
            #expect(leftovers(of: server, in: scope).isEmpty, "after signal \(signal): \(leftovers(of: server, in: scope))")
            if backend == "tdb", let db = server.db { #expect(IPC.exists(db), "TDB file deleted on signal") }
        }
    }

    @Test("--foreground: same line, stays attached, stopped by dipcrm", arguments: E2E.builtBackends)
    func foreground(backend: String) throws {
        try withScope { scope in
            let port = try freePort()
            let child = try scope.spawnDipc(
                Scope.arguments(
                    backend: backend, name: scope.name, options: ["--foreground"], mailboxes: 4, mailboxKB: 4,
                    port: port, packetKB: 1))
            let line = try #require(
                child.readStdoutLine(timeout: E2E.startTimeout),
                "no start-up line from --foreground; stderr: \(String(decoding: child.stderr, as: UTF8.self))")
            #expect(line.hasPrefix("dipc: serving 4 mailboxes of 4096 bytes on 127.0.0.1:\(port) (backend \(backend)"), "\(line)")
            #expect(line.contains("pid \(child.pid)"), "foreground pid is the child's: \(line)")
            #expect(child.checkExited() == false, "--foreground must stay attached")
            let c = try Conn(port: port)
            #expect(try c.request("r 0") == "ok 0 0")
            c.close()
            let rm = try scope.dipcrm(port)
            #expect(rm.status == 0, "\(rm)")
            let r = child.wait(timeout: 10)
            #expect(!r.timedOut && r.status == 0, "foreground server after dipcrm: \(r)")
            let record = scope.readRecord(port)
            #expect(record == nil, "record left: \(String(describing: record))")
            waitUntil(timeout: 5) { IPC.storeObjects(name: scope.name).isEmpty }
            #expect(IPC.storeObjects(name: scope.name).isEmpty, "\(IPC.storeObjects(name: scope.name))")
        }
    }

    @Test("idle client gets `err shutdown` and EOF on dipcrm", arguments: E2E.builtBackends)
    func shutdownTellsIdleClients(backend: String) throws {
        try withScope { scope in
            let server = try scope.start(backend)
            let idle = try server.connect()
            #expect(try idle.request("r 0") == "ok 0 0")
            let idle2 = try server.connect()  // connected, never sent anything
            _ = try? server.connect().request("i")  // make sure idle2 has been accepted
            let rm = try scope.dipcrm(server.port)
            #expect(rm.status == 0, "\(rm)")
            for (n, c) in [idle, idle2].enumerated() {
                let line = try? c.readLine()
                #expect(line?.hasPrefix("err shutdown") == true, "idle client \(n) got \(String(describing: line))")
                let after = c.waitForClose(timeout: 5)
                #expect(after == .closed, "idle client \(n) after err shutdown: \(after)")
            }
        }
    }

    @Test("--bind 127.0.0.2 listens there only; dipcrm finds it", arguments: E2E.builtBackends)
    func bindAddress(backend: String) throws {
        try withScope { scope in
            let s = try scope.start(backend, options: ["--bind", "127.0.0.2"])
            #expect(s.record["bind"] == "127.0.0.2", "record: \(s.record)")
            #expect(s.startLine.contains("127.0.0.2:\(s.port)"), "start-up line: \(s.startLine)")
            let c = try Conn(port: s.port, host: "127.0.0.2")
            #expect(try c.request("r 0") == "ok 0 0")
            c.close()
            #expect(!portAccepts(s.port), "--bind 127.0.0.2 also accepts on 127.0.0.1")
            let rm = try scope.dipcrm(s.port)
            #expect(rm.status == 0, "\(rm)")
            #expect(s.waitGone(timeout: 5))
            #expect(!portAccepts(s.port, host: "127.0.0.2"))
            #expect(!IPC.exists(scope.recordPath(s.port)))
        }
    }

    @Test("dipcrm does not wait for a stalled request beyond its 5 s deadline", arguments: E2E.builtBackends)
    func dipcrmDeadline(backend: String) throws {
        try withScope { scope in
            let s = try scope.start(backend)  // --io-timeout defaults to 30 s
            let c = try s.connect()
            try c.send("w 1 10\nabc")  // in flight, never finished
            #expect(c.staysSilent(for: 0.3))
            let t = monotonicNow()
            let rm = try scope.dipcrm(s.port)
            let took = monotonicNow() - t
            #expect(rm.status == 0, "\(rm)")
            #expect(took < 9, "dipcrm took \(took) s with one stalled request (deadline is 5 s)")
            #expect(s.waitGone(timeout: 3), "server still alive after dipcrm")
            let after = c.waitForClose(timeout: 3)
            #expect(after != .stillOpen, "stalled client still open after the server stopped")
            waitUntil(timeout: 3) { leftovers(of: s, in: scope).isEmpty }
            #expect(leftovers(of: s, in: scope).isEmpty, "\(leftovers(of: s, in: scope))")
        }
    }

    @Test("a request in flight when dipcrm starts is finished and answered", arguments: E2E.builtBackends)
    func inFlightFinishes(backend: String) throws {
        try withScope { scope in
            let s = try scope.start(backend)
            let c = try s.connect()
            let value = randomBytes(4096)
            try c.send(Array("w 1 4096\n".utf8) + value[0..<2000])
            #expect(c.staysSilent(for: 0.2))
            let env = scope.env
            let port = s.port
            let rmResult = Locked<ProcessResult?>(nil)
            let done = DispatchGroup()
            done.enter()
            Thread {
                defer { done.leave() }
                let r = try? runProcess(try Binaries.path("dipcrm"), ["\(port)"], env: env, timeout: E2E.stopTimeout)
                rmResult.withValue { $0 = r }
            }.start()
            // Give dipcrm time to reach the server, then finish the request.
            waitUntil(timeout: 3) { !portAccepts(port) }
            try c.send(Array(value[2000...]))
            let line = try? c.readLine()
            #expect(line == "ok 1", "in-flight write finished after dipcrm began got \(String(describing: line))")
            #expect(done.wait(timeout: .now() + 20) == .success)
            let rm = rmResult.get
            #expect(rm?.status == 0, "\(String(describing: rm))")
        }
    }

    @Test("dipcrm never signals a process that merely reuses a crashed server's pid", arguments: E2E.builtBackends)
    func pidReuseSafety(backend: String) throws {
        try withScope { scope in
            let s = try scope.start(backend)
            s.kill(SIGKILL)
            try #require(s.waitGone(timeout: 5), "pid \(s.pid) still alive after SIGKILL")
            // Pretend the pid was recycled: point the stale record at an innocent process of ours.
            let innocent = try ChildProcess("/bin/sleep", ["60"], env: scope.env)
            let path = scope.recordPath(s.port)
            let text = try String(contentsOfFile: path, encoding: .utf8)
            let patched = text.split(separator: "\n").map { $0.hasPrefix("pid=") ? "pid=\(innocent.pid)" : String($0) }
            try (patched.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
            let rm = try scope.dipcrm(s.port)
            #expect(innocent.checkExited() == false, "dipcrm killed pid \(innocent.pid), which is not a dipc server (start time differs)")
            #expect(rm.status == 0, "\(rm)")
            #expect(!IPC.exists(path), "stale record left")
            waitUntil(timeout: 3) { s.storeObjects().isEmpty }
            #expect(s.storeObjects().isEmpty, "\(s.storeObjects())")
            kill(innocent.pid, SIGKILL)
            _ = innocent.wait(timeout: 5)
        }
    }
}
