import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The repository's root (this file is Tests/DIPCEndToEndTests/ExamplesTests.swift).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Examples/python, Examples/netcat and Examples/systemd against real servers.
@Suite("Examples")
struct ExamplesTests {

    @Test("python: example.py talks to a server with the standard library only")
    func python() throws {
        try withServer("sysv") { server, scope in
            let r = try runProcess(
                "/usr/bin/env", ["python3", repositoryRoot + "/Examples/python/example.py", "--port", "\(server.port)"],
                env: scope.env, timeout: E2E.clientTimeout)
            #expect(r.status == 0, "\(r)")
            let lines = r.out.split(separator: "\n").map(String.init)
            #expect(lines == [
                "server: backend=sysv name=\(server.name) mailboxes=4",
                "register: wrote version 1, read 'hello from python' (version 1)",
                "queue: took first, second, third",
                "queue: now empty",
                "error: range",
                "stats: reads=1 writes=1 pushes=3 takes=3",
            ], "\(r)")
            // What it wrote is what other clients see.
            let (data, version) = try server.connect().read(0)
            #expect(String(decoding: data, as: UTF8.self) == "hello from python" && version == 1)
            #expect(try server.connect().request("r 1") == "ok 0 6", "the queue must be empty after 3 pushes and 3 takes")
        }
    }

    @Test("netcat: dipc-nc.sh reads, writes, pushes, takes and reports errors", .requires(.netcat, .bash))
    func netcat() throws {
        try withServer("posix") { server, scope in
            let script = repositoryRoot + "/Examples/netcat/dipc-nc.sh"
            func run(_ args: [String]) throws -> ProcessResult {
                try runProcess(script, ["-p", "\(server.port)"] + args, env: scope.env, timeout: E2E.clientTimeout)
            }
            let w = try run(["write", "1", "two words"])
            #expect(w.status == 0 && w.out == "1\n", "\(w)")
            let r = try run(["read", "1"])
            #expect(r.status == 0 && r.out == "two words", "read prints exactly the value: \(r)")
            #expect(try run(["push", "2", "job"]).out == "1\n")
            let t = try run(["take", "2"])
            #expect(t.status == 0 && t.out == "job", "\(t)")
            let empty = try run(["take", "2", "50"])
            #expect(empty.status == 1 && empty.err.contains("err empty"), "\(empty)")
            let range = try run(["read", "9"])
            #expect(range.status == 1 && range.err.contains("err range"), "\(range)")
            let info = try run(["info"])
            #expect(info.status == 0 && info.out.contains("backend=posix\n"), "\(info)")
            let stats = try run(["stats"])
            #expect(stats.status == 0 && stats.out.contains("takes=1\n"), "\(stats)")
            let usage = try run(["read", "x"])
            #expect(usage.status == 2 && usage.err.contains("read N"), "\(usage)")
            #expect(try server.connect().read(1).data == Array("two words".utf8))
        }
    }

    @Test("netcat: dipc-nc.sh over the Unix socket (-U), over TLS (-c/-t, openssl s_client) and with a token (-a, $DIPC_AUTH_FILE)",
          .requires(.netcat, .bash, .openssl))
    func netcatAccess() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let token = try scope.secretFile("token", TokenAuthenticationTests.token + "\n")
            let wrong = try scope.secretFile("wrong", "Wrong-Token-0123456789\n")
            let path = scope.dir + "/nc.sock"
            let server = try scope.start("posix", options: certificates.serverOptions() + ["--auth-file", token, "--unix", path])
            let script = repositoryRoot + "/Examples/netcat/dipc-nc.sh"
            func run(_ args: [String], env extra: [String: String] = [:]) throws -> ProcessResult {
                try runProcess(script, args, env: scope.env.merging(extra) { $1 }, timeout: E2E.clientTimeout)
            }
            let tls = ["-p", "\(server.port)", "-c", certificates.ca]
            let unixWrite = try run(["-U", path, "-a", token, "write", "1", "over unix"])
            #expect(unixWrite.status == 0 && unixWrite.out == "1\n", "\(unixWrite)")
            let tlsRead = try run(tls + ["-a", token, "read", "1"])
            #expect(tlsRead.status == 0 && tlsRead.out == "over unix", "\(tlsRead)")
            let tlsPush = try run(tls + ["-a", token, "push", "2", "job"])
            #expect(tlsPush.status == 0 && tlsPush.out == "1\n", "\(tlsPush)")
            let envTake = try run(["-U", path, "take", "2"], env: ["DIPC_AUTH_FILE": token])
            #expect(envTake.status == 0 && envTake.out == "job", "\(envTake)")
            let named = try run(["-h", "localhost"] + tls + ["-a", token, "info"])
            #expect(named.status == 0 && named.out.contains("backend=posix\n"), "a verified host name: \(named)")
            // Refusals: no token, a wrong one, and a server certificate the system's CAs do not know.
            let none = try run(["-U", path, "read", "1"])
            #expect(none.status == 1 && none.err.contains("err auth authentication required"), "\(none)")
            let bad = try run(tls + ["-a", wrong, "read", "1"])
            #expect(bad.status == 1 && bad.err.contains("err auth") && bad.out.isEmpty, "\(bad)")
            let unverified = try run(["-p", "\(server.port)", "-t", "-a", token, "read", "1"])
            #expect(unverified.status == 1 && unverified.out.isEmpty, "served without a trusted certificate: \(unverified)")
            let plain = try run(["-p", "\(server.port)", "-a", token, "read", "1"])
            #expect(plain.status == 1 && plain.out.isEmpty, "plain text to the TLS port: \(plain)")
            let both = try run(["-U", path, "-t", "read", "1"])
            #expect(both.status == 2, "\(both)")
        }
    }

    @Test("netcat: two `dipc-nc.sh chat` sessions exchange lines through each other's queue", .requires(.netcat, .bash))
    func chat() throws {
        try withServer("sysv") { server, scope in
            let script = repositoryRoot + "/Examples/netcat/dipc-nc.sh"
            let stop = scope.dir + "/stop-chat"
            defer { FileManager.default.createFile(atPath: stop, contents: nil) }
            // Each side types one line, then keeps its terminal open until `stop` exists.
            func side(_ line: String, me: Int, them: Int) throws -> ChildProcess {
                let typing = "{ printf '%s\\n' '\(line)'; while [ ! -e '\(stop)' ]; do sleep 0.05; done; }"
                return try ChildProcess(
                    "/bin/bash", ["-c", "\(typing) | '\(script)' -p \(server.port) chat \(me) \(them)"], env: scope.env)
            }
            let alice = try side("hello bob", me: 0, them: 1)
            let bob = try side("hi alice", me: 1, them: 0)
            let aliceSaw = alice.readStdoutLine(timeout: 10)
            let bobSaw = bob.readStdoutLine(timeout: 10)
            FileManager.default.createFile(atPath: stop, contents: nil)
            #expect(aliceSaw == "< hi alice", "alice's screen: \(String(describing: aliceSaw))")
            #expect(bobSaw == "< hello bob", "bob's screen: \(String(describing: bobSaw))")
            let a = alice.wait(timeout: 10)
            let b = bob.wait(timeout: 10)
            #expect(a.status == 0 && b.status == 0, "\(a)\n\(b)")
            // Gone means gone: no take of a session that left is still waiting to swallow a message.
            let c = try server.connect()
            try c.send("p 0 5\nlater")
            #expect(try c.readLine() == "ok 3")
            try c.send("c 0 5000\n")
            #expect(try c.readDataReply(request: "c 0 5000").data == Array("later".utf8))
        }
    }

    /// The unit's `KEY=` line, or nil.
    static func unitLine(_ key: String, in unit: String) -> String? {
        unit.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    @Test("systemd: the unit's ExecStart serves in the foreground and its ExecStop stops it cleanly")
    func systemdUnit() throws {
        let unit = try String(contentsOfFile: repositoryRoot + "/Examples/systemd/dipc.service", encoding: .utf8)
        #expect(Self.unitLine("Type", in: unit) == "simple")
        let start = try #require(Self.unitLine("ExecStart", in: unit))
        let stop = try #require(Self.unitLine("ExecStop", in: unit))
        #expect(start.contains(" --foreground "), "ExecStart must not detach: \(start)")
        try withScope { scope in
            let port = try freePort()
            let bin = (try Binaries.path("dipc") as NSString).deletingLastPathComponent
            // The unit's command lines, with this build's binaries, a free port and the scope's store name.
            func adapt(_ line: String) -> [String] {
                line.replacingOccurrences(of: "/usr/local/bin/", with: bin + "/")
                    .replacingOccurrences(of: "7070", with: "\(port)")
                    .replacingOccurrences(of: "--name chat", with: "--name \(scope.name)")
                    .split(separator: " ").map(String.init)
            }
            let startArgs = adapt(start)
            let server = try ChildProcess(startArgs[0], Array(startArgs.dropFirst()), env: scope.env)
            let line = server.readStdoutLine(timeout: E2E.startTimeout)
            #expect(line?.hasPrefix("dipc: serving 16 mailboxes of 65536 bytes on 127.0.0.1:\(port)") == true, "\(String(describing: line))")
            let c = try Conn(port: port)
            try c.write(3, "under systemd")
            #expect(try c.read(3).data == Array("under systemd".utf8))
            c.close()
            let record = scope.readRecord(port) ?? [:]
            let stopArgs = adapt(stop)
            let stopped = try runProcess(stopArgs[0], Array(stopArgs.dropFirst()), env: scope.env, timeout: E2E.stopTimeout)
            #expect(stopped.status == 0, "\(stopped)")
            let exited = server.wait(timeout: 10)
            #expect(exited.status == 0 && !exited.timedOut, "ExecStart's process after ExecStop: \(exited)")
            #expect(!portAccepts(port) && scope.readRecord(port) == nil, "port or record left behind")
            #expect(IPC.storeObjects(name: scope.name, shmID: record["shm_id"].flatMap { Int32($0) }).isEmpty)
        }
    }

    @Test(
        "systemd: systemd-analyze verify accepts the unit",
        .requires(.systemdAnalyze))
    func systemdVerify() throws {
        try withScope { scope in
            let bin = (try Binaries.path("dipc") as NSString).deletingLastPathComponent
            // The man pages are not installed here: drop Documentation= (verify runs man on it).
            let unit = try String(contentsOfFile: repositoryRoot + "/Examples/systemd/dipc.service", encoding: .utf8)
                .replacingOccurrences(of: "/usr/local/bin/", with: bin + "/")
                .split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("Documentation=") }.joined(separator: "\n")
            let path = scope.dir + "/dipc-\(scope.tag).service"
            try unit.write(toFile: path, atomically: true, encoding: .utf8)
            let r = try runProcess("/usr/bin/systemd-analyze", ["verify", path], env: scope.env, timeout: 30)
            #expect(r.status == 0 && r.err.isEmpty, "\(r)")
        }
    }
}
