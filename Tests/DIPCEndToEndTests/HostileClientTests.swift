import Foundation
import Testing
import DIPCTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Hostile and broken clients (SPEC §2): what ProtocolTests and LimitsTests do not
/// already cover. Every server: 4 mailboxes of 4 KiB, 1 KiB packets. The tests that take
/// a `Route` run over plain TCP, over a connection authenticated with a token, and over
/// TLS (issue 15).
@Suite("hostile clients")
struct HostileClientTests {
    /// Requests that are errors but keep the connection open, each with its error code.
    /// Together they cover HTTP request lines, NUL bytes, wrong field counts of every
    /// operation, and signs, overflows and non-ASCII digits in every number's place.
    static let staysOpen: [(request: [UInt8], code: String)] = {
        let over = "99999999999999999999"
        let lines: [(String, String)] = [
            ("GET / HTTP/1.1\r", "syntax"), ("Host: 127.0.0.1\r", "syntax"), ("User-Agent: curl/8.0\r", "syntax"),
            ("Accept: */*\r", "syntax"), ("POST /dipc HTTP/1.0", "syntax"), ("CONNECT 127.0.0.1:80 HTTP/1.1", "syntax"),
            ("\u{0}", "syntax"), ("r \u{0}", "syntax"), ("r 1\u{0}", "syntax"), ("\u{0}r 1", "syntax"), ("r\u{0}1", "syntax"),
            ("i\u{0}", "syntax"), ("s\u{0}", "syntax"), ("c 1\u{0}", "syntax"), ("q\u{0}", "syntax"),
            ("r 1 2", "syntax"), ("r 1 2 3 4", "syntax"), ("r 1 2 3 4 5 6 7 8", "syntax"), ("c", "syntax"),
            ("c 1 2 3", "syntax"), ("q 1 2", "syntax"), ("s 1", "syntax"), ("i 1", "syntax"), ("rr 1", "syntax"),
            ("r \(over)", "syntax"), ("r 0 \(over) 0", "syntax"), ("r 0 0 \(over)", "syntax"), ("c \(over)", "syntax"),
            ("c 0 \(over)", "syntax"), ("q \(over)", "syntax"), ("r -0", "syntax"), ("c -1", "syntax"),
            ("c 0 -5", "syntax"), ("r 1e3", "syntax"), ("r 0x1", "syntax"), ("r \u{FF11}", "syntax"), ("r 1.0", "syntax"),
            ("r 0 0 3600001", "syntax"), ("c 0 3600001", "syntax"), ("r 0 -1 0", "syntax"),
            // A push without LEN announces no data: nothing to skip.
            ("p", "syntax"), ("p 1", "syntax"),
            ("r 4", "range"), ("c 4", "range"), ("r 4 0 0", "range"), ("r 18446744073709551615 0 0", "range"),
        ]
        var out = lines.map { (Array(($0.0 + "\n").utf8), $0.1) }
        // Writes and pushes whose LEN is well formed: the data is read and dropped.
        let dropped: [(String, String)] = [
            ("w \(over) 3\nabc", "syntax"), ("w -1 3\nabc", "syntax"), ("w 9 3\nw 0", "range"),
            ("p 9 3\nr 0", "range"), ("p 9 3 0\nabc", "range"), ("p \(over) 3\nabc", "syntax"),
            ("p 0 3 x\nabc", "syntax"), ("p 0 3 \(over)\nabc", "syntax"), ("p 0 3 3600001\nw 1", "syntax"),
            ("w \(over)\nw 0 1\n", "syntax"), ("w 9\nw 0 1\n", "range"), ("w \u{0}\nabc\n", "syntax"),
            // Syntax before size: a bad N's data line is skipped even when longer than the mailbox.
            ("w x\n" + String(repeating: "a", count: 5000) + "\n", "syntax"),
            // Extra fields after a well-formed LEN (the third field): wrong field count, data skipped.
            ("w 1 3 3\nw 0", "syntax"), ("w 1 3 3 4 5\nabc", "syntax"), ("p 1 3 3 4\nr 0", "syntax"),
        ]
        out += dropped.map { (Array($0.0.utf8), $0.1) }
        return out
    }()

    @Test("errors that keep the connection open: the right code, and the stream stays in sync", arguments: Route.firstBackend)
    func errorsThatStayOpen(route: Route) throws {
        try withServer(route) { server, dial, _ in
            let c = try dial.connect()
            for (request, code) in Self.staysOpen {
                try c.send(request)
                let shown = String(decoding: request, as: UTF8.self).debugDescription
                let line = try c.readLine()
                #expect(line.hasPrefix("err \(code) ") && line.count > "err \(code) ".count, "\(shown) -> \(line.debugDescription)")
                // In sync: the next request is answered, and nothing was written.
                #expect(try c.request("r 0") == "ok 0 0", "after \(shown)")
            }
            for m in 0..<4 { #expect(try c.request("r \(m)") == "ok 0 0", "mailbox \(m) changed by an erroneous request") }
            // A whole HTTP request: one error per header line, the blank line is ignored.
            try c.send("GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nr 0\n")
            for header in ["GET", "Host:", "Connection:"] {
                let line = try c.readLine()
                #expect(line.hasPrefix("err syntax"), "HTTP line \(header) -> \(line.debugDescription)")
            }
            #expect(try c.readLine() == "ok 0 0", "request after an HTTP request")
            #expect(server.isAlive)
        }
    }

    /// Requests after which the server answers one error and closes the connection.
    static let closes: [(request: [UInt8], code: String)] = {
        let over = "99999999999999999999"
        var out: [([UInt8], String)] = [
            // Over 256 bytes without any newline, and a 257-byte line that ends in \r\n.
            (Array(("r " + String(repeating: "1", count: 298)).utf8), "syntax"),
            ([UInt8](repeating: 0, count: 1000), "syntax"),
            (Array((String(repeating: "r", count: 255) + "\r\n").utf8), "syntax"),
        ]
        let lines: [(String, String)] = [
            ("w 1 x 3", "syntax"), ("w 1 -2 3 4 5", "syntax"), ("p 1 x 3 4", "syntax"),
            ("p 1 -3", "syntax"), ("p 1 \(over)", "syntax"), ("p 1 3x", "syntax"), ("w 1 5\u{0}", "syntax"),
            ("p 0 5000 x", "syntax"), ("w \(over) 5000", "syntax"),
            ("p 1 4097", "size"), ("p 9 4097 0", "size"), ("w 9 18446744073709551615", "size"),
        ]
        out += lines.map { (Array(($0.0 + "\n").utf8), $0.1) }
        return out
    }()

    @Test("errors that close the connection: the right code, then EOF; nothing written", arguments: Route.firstBackend)
    func errorsThatClose(route: Route) throws {
        try withServer(route) { server, dial, _ in
            for (request, code) in Self.closes {
                let shown = String(decoding: request.prefix(40), as: UTF8.self).debugDescription
                let c = try dial.connect()
                // Whatever follows a bad header line (here, a valid write) must not be served;
                // an overlong header is sent alone, with no newline at all.
                try c.send(request.last == 10 ? request + Array("w 0 1\nx".utf8) : request)
                let line = try c.readLine()
                #expect(line.hasPrefix("err \(code) "), "\(shown)… -> \(line.debugDescription)")
                let after = c.waitForClose()
                #expect(after == .closed, "after \(shown)…: \(after)")
            }
            let c = try dial.connect()
            for m in 0..<4 { #expect(try c.request("r \(m)") == "ok 0 0", "mailbox \(m) changed by a closing error") }
        }
    }

    @Test("before `a`: a hostile request gets `err auth` (a malformed or oversized one its own error), and nothing is lost")
    func hostileBeforeAuthentication() throws {
        try withServer(Route(backend: E2E.builtBackends[0], transport: .token)) { server, dial, _ in
            let owner = try dial.connect()
            for m in 0..<4 { try owner.write(m, "kept \(m)") }
            // SPEC §2: before `a` a syntax error is still `err syntax` and an error that
            // closes still closes; every other refusal is `err auth`, its data dropped.
            let c = try dial.connect(authenticated: false)
            for (request, code) in Self.staysOpen {
                try c.send(request)
                let shown = String(decoding: request, as: UTF8.self).debugDescription
                let expected = code == "syntax" ? "syntax" : "auth"
                let line = try c.readLine()
                #expect(line.hasPrefix("err \(expected) "), "before a: \(shown) -> \(line.debugDescription)")
                #expect(try c.request("r 0") == TokenAuthenticationTests.refused, "in sync after \(shown)")
            }
            for (request, code) in Self.closes {
                let shown = String(decoding: request.prefix(40), as: UTF8.self).debugDescription
                let d = try dial.connect(authenticated: false)
                try d.send(request.last == 10 ? request + Array("w 0 1\nx".utf8) : request)
                let line = try d.readLine()
                #expect(line.hasPrefix("err \(code) "), "before a: \(shown)… -> \(line.debugDescription)")
                #expect(d.waitForClose() == .closed, "before a, after \(shown)…")
            }
            // The refused connection can still authenticate, and finds every value kept.
            let token = try #require(dial.token)
            #expect(try c.request("a \(token)") == "ok")
            for m in 0..<4 {
                let (data, version) = try c.read(m)
                #expect(data == Array("kept \(m)".utf8) && version == 1, "mailbox \(m) after hostile requests before a: v\(version)")
            }
            #expect(server.isAlive)
        }
    }

    @Test("no request stops the server: every op, odd bytes, and q from many clients", arguments: Route.firstBackend)
    func noRequestStopsTheServer(route: Route) throws {
        try withServer(route) { server, dial, _ in
            let bystander = try dial.connect()
            try bystander.write(2, "kept")
            let attempts = ["q", "q 0", "q 99999", "Q", "quit", "shutdown", "stop", "exit", "kill", "dipcrm",
                "\u{4}", "\u{3}", "s", "i", "x"]
            for text in attempts {
                let c = try dial.connect()
                try c.send(text + "\n")
                _ = try c.readLine()
                c.close()
            }
            var quitters: [Conn] = []
            for _ in 0..<20 { quitters.append(try dial.connect()) }
            for q in quitters { try q.send("q\n") }
            for q in quitters { #expect(try q.readLine() == "bye") }
            #expect(server.isAlive, "server died")
            #expect(try bystander.read(2).data == Array("kept".utf8), "bystander connection after the attempts")
            #expect(try dial.connect().request("r 2") == "ok 4 1")
        }
    }

    @Test("--io-timeout 1: a stalled netcat data line gets `err timeout` on time and changes nothing",
          arguments: Route.all(plainOn: E2E.builtBackends))
    func stalledNetcatLine(route: Route) throws {
        try withServer(route, options: ["--io-timeout", "1"]) { _, dial, _ in
            let w = try dial.connect()
            #expect(try w.write(1, "before") == 1)
            let c = try dial.connect()
            c.timeout = 8
            let start = monotonicNow()
            try c.send("w 1\nhalf a li")
            let line = try c.readLine()
            let took = monotonicNow() - start
            #expect(line.hasPrefix("err timeout "), "stalled netcat line got \(line.debugDescription)")
            #expect(took >= 0.8 && took < 6, "err timeout after \(took) s with --io-timeout 1")
            #expect(c.waitForClose() == .closed)
            let (d, v) = try w.read(1)
            #expect(d == Array("before".utf8) && v == 1, "timed-out netcat write changed the mailbox: v\(v)")
            // The writer that stayed connected and idle was not timed out meanwhile.
            #expect(try w.request("r 0") == "ok 0 0")
        }
    }

    @Test("--max-clients 3 under churn: the extra one is busy at once, the others keep being served, slots free up", arguments: E2E.builtBackends.prefix(1))
    func maxClientsChurn(backend: String) throws {
        try withServer(backend, options: ["--max-clients", "3"]) { server, _ in
            var held = [try server.connect(), try server.connect(), try server.connect()]
            for (i, c) in held.enumerated() { try c.write(i, "held \(i)") }
            for round in 0..<5 {
                let extra = try server.connect()
                extra.timeout = 3
                let start = monotonicNow()
                let line = try extra.readLine()
                #expect(line.hasPrefix("err busy "), "round \(round): extra connection got \(line.debugDescription)")
                #expect(monotonicNow() - start < 2.5, "round \(round): `err busy` was not sent at once")
                #expect(extra.waitForClose() == .closed)
                for (i, c) in held.enumerated() {
                    #expect(try c.read(i).data == Array("held \(i)".utf8), "round \(round): held connection \(i)")
                }
                // Free a slot; a newcomer takes it.
                held.removeFirst().close()
                var newcomer: Conn?
                waitUntil(timeout: 5, interval: 0.05) {
                    guard let d = try? server.connect(timeout: 2), (try? d.request("r 3")) == "ok 0 0" else { return false }
                    newcomer = d
                    return true
                }
                held.append(try #require(newcomer, "round \(round): no slot came free within 5 s"))
                // Connection i keeps mailbox i.
                for (i, c) in held.enumerated() { try c.write(i, "held \(i)") }
            }
        }
    }

    // MARK: churn and idle connections

    /// Open descriptors and threads of a live process.
    static func resources(of pid: pid_t) -> (fds: Int, threads: Int) {
        // Less what a sanitizer's symbolizer holds (make tsan), which is not the server's.
        let fds = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1)
            - ProcessResources.sanitizerDescriptors(pid)
        let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").count) ?? -1
        return (fds, threads)
    }

    /// Waits until the server counts `connections` clients (only the asking one when 1).
    static func waitForConnections(_ count: Int, asking c: Conn, timeout: Double) -> Bool {
        waitUntil(timeout: timeout, interval: 0.05) {
            (try? keyValues(c.request("s"))["connections"]) == String(count)
        }
    }

    @Test("10,000 connect/close cycles and 1,000 idle connections: healthy, no growth in fds or threads", arguments: E2E.builtBackends.prefix(1))
    func churnAndIdle(backend: String) throws {
        try withServer(backend, options: ["--max-clients", "1100"]) { server, _ in
            // Warm up every path once, then take the baseline with no client connected.
            do {
                let c = try server.connect()
                try c.write(0, "warm")
                _ = try c.read(0)
                _ = try c.request("i")
                _ = try c.request("s")
                _ = try c.request("x")
            }
            let probe = try server.connect()
            #expect(Self.waitForConnections(1, asking: probe, timeout: 10))
            probe.close()
            // Settled: the counts stop changing.
            var baseline = Self.resources(of: server.pid)
            waitUntil(timeout: 5, interval: 0.2) {
                let now = Self.resources(of: server.pid)
                defer { baseline = now }
                return now == baseline
            }
            #expect(baseline.fds > 0 && baseline.threads > 0, "cannot read /proc/\(server.pid): \(baseline)")

            // 10,000 cycles on 4 threads: RST right away, RST after a request, FIN after a request.
            let failures = Locked<[String]>([])
            let port = server.port
            let finished = runThreads(4, timeout: 240) { worker in
                for i in 0..<2500 {
                    do {
                        let c = try Conn(port: port, timeout: 10)
                        switch i % 4 {
                        case 0, 1: c.abort()
                        case 2:
                            try c.send("r 0\n")
                            _ = try c.readLine()
                            c.abort()
                        default:
                            let reply = try c.request("r 0")
                            if !reply.hasPrefix("ok 4 ") { failures.withValue { $0.append("cycle \(worker).\(i): \(reply)") } }
                            c.close()
                        }
                    } catch {
                        failures.withValue { $0.append("cycle \(worker).\(i): \(error)") }
                    }
                    if failures.get.count > 5 { return }
                }
            }
            #expect(finished, "10,000 connect/close cycles did not finish within 240 s")
            #expect(failures.get.isEmpty, "\(failures.get.prefix(5))")

            // 1,000 idle connections, then a request on each of a sample, then all closed.
            var idle: [Conn] = []
            for _ in 0..<1000 { idle.append(try server.connect()) }
            let asking = try server.connect()
            #expect(Self.waitForConnections(1001, asking: asking, timeout: 30), "the server does not count 1,001 clients")
            let busy = Self.resources(of: server.pid)
            #expect(busy.threads >= baseline.threads + 1000, "1,001 clients but \(busy.threads) threads (baseline \(baseline.threads))")
            for i in stride(from: 0, to: 1000, by: 97) {
                #expect(try idle[i].request("r 0") == "ok 4 1", "idle connection \(i)")
            }
            for c in idle { c.close() }
            idle.removeAll()
            #expect(Self.waitForConnections(1, asking: asking, timeout: 30), "the server still counts closed clients after 30 s")
            asking.close()
            var after = Self.resources(of: server.pid)
            let settled = waitUntil(timeout: 15, interval: 0.1) {
                after = Self.resources(of: server.pid)
                return after.fds <= baseline.fds && after.threads <= baseline.threads
            }
            #expect(settled, "growth after churn: \(after) vs baseline \(baseline)")
            let c = try server.connect()
            #expect(try c.write(1, "healthy") == 1)
            #expect(try c.read(1).data == Array("healthy".utf8))
            let stats = keyValues(try c.request("s"))
            #expect((stats["accepted"].flatMap { Int($0) } ?? 0) >= 11_000, "accepted: \(stats)")
        }
    }

    // MARK: random bytes

    /// Input for one storm connection: random bytes mixed with fragments of real requests,
    /// so that the decoder, the error paths and the store all see traffic.
    static func stormInput<G: RandomNumberGenerator>(using g: inout G) -> [UInt8] {
        let fragments = ["r ", "w ", "p ", "c ", "i", "s", "q", "0", "1", "3", "9", " ", "\n", "\r\n", "\n\n",
            "18446744073709551615", "99999999999999999999", "4096", "4097", "3600000", "w 1 5\nhello", "p 2 3\nabc",
            "c 2\n", "r 0 0 10\n", "w 3\nline\n", "GET / HTTP/1.1\r\n", "\u{0}", "-"]
        var out: [UInt8] = []
        let target = Int.random(in: 64...6000, using: &g)
        while out.count < target {
            if Bool.random(using: &g) {
                out += Array(fragments.randomElement(using: &g)!.utf8)
            } else {
                for _ in 0..<Int.random(in: 1...32, using: &g) { out.append(UInt8.random(in: 0...255, using: &g)) }
            }
        }
        return out
    }

    /// Over the token transport, every other storm connection never authenticates: its
    /// bytes meet the auth gate.
    @Test("a seeded storm of random bytes on 200 connections never stops the server",
          arguments: Route.all(plainOn: E2E.builtBackends))
    func randomByteStorm(route: Route) throws {
        let seed: UInt64 = 0x5EED_D1BC
        try withServer(route, options: ["--io-timeout", "2"]) { server, dial, _ in
            let sentinel = try dial.connect()
            try sentinel.write(3, "sentinel")
            let problems = Locked<[String]>([])
            let finished = runThreads(200, timeout: 120) { index in
                var g = SplitMix64(seed: seed &+ UInt64(index))
                let input = HostileClientTests.stormInput(using: &g)
                let c: Conn
                do {
                    c = try dial.connect(timeout: 10, authenticated: index % 2 == 0)
                } catch {
                    problems.withValue { $0.append("connection \(index): \(error)") }
                    return
                }
                // Send in random pieces; the server may close us at any point (that is fine).
                var offset = 0
                while offset < input.count {
                    let piece = min(input.count - offset, Int.random(in: 1...700, using: &g))
                    if (try? c.send(Array(input[offset..<offset + piece]))) == nil { break }
                    offset += piece
                }
                // Read whatever comes back for a moment, then leave with a reset, so that a
                // request left waiting (a watch of up to an hour) sees the client gone.
                _ = c.waitForClose(timeout: 0.5)
                c.abort()
            }
            #expect(finished, "storm clients did not finish within 120 s")
            #expect(problems.get.isEmpty, "\(problems.get.prefix(5))")
            #expect(server.isAlive, "the storm (seed \(seed)) stopped the server")
            // Every storm connection ends (stalled ones by --io-timeout 2); the server still serves.
            let c = try dial.connect()
            #expect(Self.waitForConnections(2, asking: c, timeout: 30), "storm connections still counted after 30 s")
            #expect(try sentinel.request("i").hasPrefix("ok dipc/1 "), "sentinel connection after the storm")
            #expect(try c.write(0, "after the storm") >= 1)
            #expect(try c.read(0).data == Array("after the storm".utf8))
            let s = keyValues(try c.request("s"))
            #expect((s["errors"].flatMap { Int($0) } ?? 0) >= 200, "the storm should have produced errors: \(s)")
        }
    }
}
