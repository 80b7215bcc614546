import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `s` request (SPEC §2) and `dipc-client stats`, `ls` and `--json`, black-box.
@Suite("stats, ls and --json")
struct StatsAndListTests {
    static let statsKeys = [
        "connections", "accepted", "rejected", "reads", "writes", "pushes", "takes", "errors", "bytes_in",
        "bytes_out", "uptime_s", "queued",
    ]

    @Test("s counts connections, requests by type, errors and bytes exactly")
    func statsCounters() throws {
        try withServer("sysv", options: ["--max-clients", "2"]) { server, _ in
            let a = try server.connect()
            var sent = 0
            var received = 0
            func exchange(_ request: [UInt8], replyBytes: Int) throws {
                try a.send(request)
                sent += request.count
                _ = try a.readBytes(replyBytes)
                received += replyBytes
            }
            try exchange(Array("w 0 3\nabc".utf8), replyBytes: "ok 1\n".count)
            try exchange(Array("r 0\n".utf8), replyBytes: "ok 3 1\nabc".count)
            try exchange(Array("p 1 2\nxy".utf8), replyBytes: "ok 1\n".count)
            try exchange(Array("c 1\n".utf8), replyBytes: "ok 2 2\nxy".count)
            try a.send("r 9\n")
            sent += 4
            let range = try a.readLine()
            #expect(range.hasPrefix("err range"), "\(range)")
            try a.send("bogus\n")
            sent += 6
            let syntax = try a.readLine()
            #expect(syntax.hasPrefix("err syntax"), "\(syntax)")
            received += range.utf8.count + 1 + syntax.utf8.count + 1

            // A second client fills --max-clients 2; a third is turned away.
            let b = try server.connect()
            let c = try server.connect()
            let busy = try c.readLine()
            #expect(busy.hasPrefix("err busy"), "\(busy)")

            try a.send("s\n")
            sent += 2
            let line = try a.readLine()
            #expect(line.hasPrefix("ok "), "\(line)")
            let words = line.split(separator: " ").dropFirst().map { $0.split(separator: "=", maxSplits: 1) }
            #expect(words.allSatisfy { $0.count == 2 }, "every field is KEY=VALUE: \(line)")
            let stats = keyValues(line)
            for key in Self.statsKeys {
                #expect(stats[key].flatMap { UInt64($0) } != nil, "`s` lacks a decimal \(key): \(line)")
            }
            let expected: [String: Int] = [
                "connections": 2, "accepted": 2, "rejected": 1, "reads": 1, "writes": 1, "pushes": 1, "takes": 1,
                "errors": 2, "bytes_in": sent, "bytes_out": received,
            ]
            for (key, value) in expected {
                #expect(stats[key] == "\(value)", "\(key): expected \(value) in \(line)")
            }
            b.close()
            // The closed client is no longer counted.
            var now: [String: String] = [:]
            let dropped = waitUntil(timeout: 5) {
                now = (try? a.request("s")).map(keyValues) ?? [:]
                return now["connections"] == "1"
            }
            #expect(dropped, "connections after one client left: \(now)")
        }
    }

    @Test("dipc-client stats prints the counters as key=value lines and as JSON")
    func statsCommand() throws {
        try withServer("posix") { server, scope in
            let p = ["--port", "\(server.port)"]
            try server.connect().write(2, "x")
            let text = try scope.client(p + ["stats"])
            #expect(text.status == 0, "\(text)")
            let lines = text.out.split(separator: "\n").map(String.init)
            #expect(lines.map { String($0.prefix(while: { $0 != "=" })) } == Self.statsKeys, "\(text)")
            #expect(lines.contains("writes=1"), "\(text)")
            let json = try scope.client(["--json"] + p + ["stats"])
            #expect(json.status == 0, "\(json)")
            let object = try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [String: Any]
            #expect(object?["writes"] as? Int == 1, "\(json)")
            #expect(object?["connections"] as? Int == 1, "\(json)")
            #expect(Set(object?.keys.map { $0 } ?? []) == Set(Self.statsKeys), "\(json)")
        }
    }

    @Test("--json: read, write and info as JSON objects; errors as JSON on stderr, exit 1")
    func jsonOutput() throws {
        try withServer("sysv") { server, scope in
            let p = ["--json", "--port", "\(server.port)"]
            let w = try scope.client(p + ["write", "1", "héllo \"quoted\"\n"])
            #expect(w.status == 0 && w.out == "{\"mailbox\":1,\"version\":1}\n", "\(w)")
            let r = try scope.client(p + ["read", "1"])
            let read = try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any]
            #expect(read?["data"] as? String == "héllo \"quoted\"\n", "\(r)")
            #expect(read?["version"] as? Int == 1 && read?["length"] as? Int == 16, "\(r)")
            try server.connect().write(2, [0xff, 0x00, 0xfe])
            let binary = try scope.client(p + ["read", "2"])
            let decoded = try JSONSerialization.jsonObject(with: Data(binary.stdout)) as? [String: Any]
            #expect(decoded?["data_base64"] as? String == "/wD+", "\(binary)")
            let i = try scope.client(p + ["info"])
            let info = try JSONSerialization.jsonObject(with: Data(i.stdout)) as? [String: Any]
            #expect(info?["backend"] as? String == "sysv" && info?["mailboxes"] as? Int == 4, "\(i)")
            let bad = try scope.client(p + ["read", "9"])
            #expect(bad.status == 1 && bad.stdout.isEmpty, "\(bad)")
            let error = try JSONSerialization.jsonObject(with: Data(bad.stderr)) as? [String: Any]
            #expect(error?["code"] as? String == "range", "\(bad)")
            #expect((error?["error"] as? String)?.contains("mailbox 9") == true, "\(bad)")
        }
    }

    @Test("ls lists running servers with geometry, clients and uptime, and marks dead ones")
    func list() throws {
        try withScope { scope in
            let empty = try scope.client(["ls"])
            #expect(empty.status == 0 && empty.out.hasPrefix("no dipc servers"), "\(empty)")
            let emptyJSON = try scope.client(["--json", "ls"])
            #expect(emptyJSON.status == 0 && emptyJSON.out == "[]\n", "\(emptyJSON)")

            let first = try scope.start("sysv", mailboxes: 3, mailboxKB: 2, packetKB: 1)
            let second = try scope.start("posix", name: scope.newName(), mailboxes: 5, mailboxKB: 4, packetKB: 2)
            let victim = try scope.start("sysv", name: scope.newName())
            victim.kill(SIGKILL)
            try #require(victim.waitGone(), "pid \(victim.pid) still alive after SIGKILL")
            let held = try first.connect()
            _ = try held.request("i")

            let r = try scope.client(["ls"])
            #expect(r.status == 0, "\(r)")
            let rows = r.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.first == ["PORT", "PID", "STATE", "BACKEND", "NAME", "MAILBOXES", "SIZE", "PACKET", "CLIENTS", "UPTIME"], "\(r)")
            func row(_ server: Server) -> [String]? { rows.first { $0.first == "\(server.port)" } }
            #expect(row(first)?.dropLast() == ["\(first.port)", "\(first.pid)", "running", "sysv", first.name, "3", "2048", "1024", "1"], "\(r)")
            #expect(row(second)?.dropLast() == ["\(second.port)", "\(second.pid)", "running", "posix", second.name, "5", "4096", "2048", "0"], "\(r)")
            #expect(row(victim).map { Array($0[0...3]) } == ["\(victim.port)", "\(victim.pid)", "dead", "sysv"], "\(r)")
            #expect(row(victim)?.suffix(2) == ["-", "-"], "a dead server has no clients or uptime: \(r)")
            #expect(row(first)?.last?.hasSuffix("s") == true, "uptime: \(r)")

            let j = try scope.client(["--json", "ls"])
            let list = try JSONSerialization.jsonObject(with: Data(j.stdout)) as? [[String: Any]]
            #expect(list?.count == 3, "\(j)")
            let entry = list?.first { $0["port"] as? Int == second.port }
            #expect(entry?["state"] as? String == "running" && entry?["mailbox_size"] as? Int == 4096, "\(j)")
            #expect(entry?["clients"] as? Int == 0 && (entry?["uptime_s"] as? Int ?? -1) >= 0, "\(j)")
            #expect(entry?["coordinator"] as? String == "fifo" && entry?["shm_name"] as? String == second.shmName, "\(j)")
            let firstEntry = list?.first { $0["port"] as? Int == first.port }
            #expect(firstEntry?["shm_id"] as? Int == first.shmID.map(Int.init), "\(j)")
            let dead = list?.first { $0["port"] as? Int == victim.port }
            #expect(dead?["state"] as? String == "dead" && dead?["clients"] is NSNull, "\(j)")
        }
    }

    @Test(
        "shell on a terminal edits lines and recalls history",
        .requires(.script))
    func shellLineEditing() throws {
        try withServer("sysv") { server, scope in
            let history = scope.dir + "/history"
            var env = scope.env
            env["DIPC_HISTORY"] = history
            let client = try Binaries.path("dipc-client")
            // "abc", two cursor-lefts, "X": the line sent is "w 1 aXbc". Then the up arrow
            // twice recalls it from history and sends it again (version 2).
            let keys = "w 1 abc\u{1b}[D\u{1b}[DX\nr 1\n\u{1b}[A\u{1b}[A\nq\n"
            let r = try runProcess(
                "/usr/bin/script", ["-qec", "\(client) --port \(server.port) shell", "/dev/null"], env: env,
                stdin: Array(keys.utf8), timeout: E2E.clientTimeout)
            #expect(r.status == 0, "\(r)")
            let (data, version) = try server.connect().read(1)
            #expect(String(decoding: data, as: UTF8.self) == "aXbc", "line editing: \(r)")
            #expect(version == 2, "the recalled line was not sent again: \(r)")
            // libedit's history file encodes a space as \040.
            let saved = (try? String(contentsOfFile: history, encoding: .utf8)) ?? ""
            #expect(saved.contains("w\\0401\\040aXbc\nr\\0401\n"), "history file: \(saved.debugDescription)")
        }
    }

    @Test("shell without a terminal: no prompt, errors on stderr, the session goes on")
    func shellScripted() throws {
        try withServer("sysv") { server, scope in
            let input = "w 1 one two\nr 9\nbogus\nr 1\np 2 a job\nc 2 100\nr 1 0 100\n"
            let r = try scope.client(["--port", "\(server.port)", "shell"], stdin: Array(input.utf8))
            #expect(r.status == 0, "\(r)")
            #expect(r.out == "1\none two\n1\na job\none two\n", "stdout must hold only the results: \(r)")
            let errors = r.err.split(separator: "\n")
            #expect(errors.count == 2 && errors.allSatisfy { $0.hasPrefix("dipc-client: ") }, "\(r)")
            #expect(r.err.contains("range") && r.err.contains("unknown command 'bogus'"), "\(r)")
        }
    }
}
