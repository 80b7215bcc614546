import Foundation
import Testing

/// `--max-clients`, `--io-timeout`, dropped writes. The tests that take a `Route` run
/// over plain TCP, over a connection authenticated with a token, and over TLS.
@Suite("limits")
struct LimitsTests {
    @Test("--max-clients 2: the third connection gets `err busy` and is closed", arguments: E2E.builtBackends)
    func maxClients(backend: String) throws {
        try withServer(backend, options: ["--max-clients", "2"]) { server, _ in
            let a = try server.connect()
            let b = try server.connect()
            #expect(try a.request("r 0") == "ok 0 0")
            #expect(try b.request("r 0") == "ok 0 0")
            let c = try server.connect()
            let line = try c.readLine()
            #expect(line.hasPrefix("err busy"), "third connection got \(line.debugDescription)")
            #expect(c.waitForClose() == .closed, "third connection after err busy")
            #expect(try a.request("r 1") == "ok 0 0", "first connection still served")
            // Once one leaves, a new one is served.
            b.close()
            var served = false
            waitUntil(timeout: 5, interval: 0.05) {
                guard let d = try? server.connect(timeout: 2) else { return false }
                served = (try? d.request("r 2")) == "ok 0 0"
                return served
            }
            #expect(served, "no new connection served within 5 s after one of 2 closed")
            let s = keyValues(try a.request("s"))
            #expect((s["rejected"].flatMap { Int($0) } ?? 0) >= 1, "s rejected: \(s)")
        }
    }

    @Test("--io-timeout 1: a stalled write gets `err timeout`, is closed, changes nothing",
          arguments: Route.all(plainOn: E2E.builtBackends))
    func ioTimeoutStalledWrite(route: Route) throws {
        try withServer(route, options: ["--io-timeout", "1"]) { _, dial, _ in
            let w = try dial.connect()
            #expect(try w.write(1, "hello") == 1)
            let c = try dial.connect()
            let start = monotonicNow()
            try c.send("w 1 10\nabc")
            c.timeout = 8
            let line = try c.readLine()
            let took = monotonicNow() - start
            #expect(line.hasPrefix("err timeout"), "stalled `w 1 10` + abc got \(line.debugDescription)")
            #expect(took >= 0.8 && took < 6, "err timeout came after \(took) s with --io-timeout 1")
            #expect(c.waitForClose() == .closed, "after err timeout")
            let (d, v) = try w.read(1)
            #expect(d == Array("hello".utf8) && v == 1, "mailbox changed by a timed-out write: \(String(decoding: d, as: UTF8.self)) v\(v)")
        }
    }

    @Test("--io-timeout 1: a stalled header (even a lone \\r) gets `err timeout`", arguments: Route.all(plainOn: E2E.builtBackends))
    func ioTimeoutStalledHeader(route: Route) throws {
        try withServer(route, options: ["--io-timeout", "1"]) { _, dial, _ in
            // Both stall at once: one timeout period covers the two.
            let stalled = try ["r 1", "\r"].map { header in
                let c = try dial.connect()
                try c.send(header)
                c.timeout = 8
                return (header, c)
            }
            for (header, c) in stalled {
                let line = try c.readLine()
                #expect(line.hasPrefix("err timeout"), "stalled header \(header.debugDescription) got \(line.debugDescription)")
                #expect(c.waitForClose() == .closed)
            }
        }
    }

    @Test("--io-timeout 1: an idle client is not timed out", arguments: E2E.builtBackends)
    func idleNotTimedOut(backend: String) throws {
        try withServer(backend, options: ["--io-timeout", "1"]) { server, _ in
            let fresh = try server.connect()  // never sent anything
            let c = try server.connect()
            #expect(try c.request("r 0") == "ok 0 0")
            #expect(c.staysSilent(for: 2.5), "idle client (between requests) was answered or closed")
            #expect(try c.request("r 0") == "ok 0 0", "idle client after 2.5 s")
            #expect(fresh.staysSilent(for: 0.1), "never-used client was answered or closed")
            #expect(try fresh.request("r 0") == "ok 0 0", "never-used client after 2.6 s")
        }
    }

    @Test("a write whose data never fully arrives changes nothing", arguments: Route.all(plainOn: E2E.builtBackends))
    func droppedWrite(route: Route) throws {
        try withServer(route) { _, dial, _ in
            let w = try dial.connect()
            #expect(try w.write(1, "before") == 1)
            for abort in [false, true] {
                let c = try dial.connect()
                try c.send(Array("w 1 100\n".utf8) + [UInt8](repeating: 0x41, count: 50))
                #expect(c.staysSilent(for: 0.2), "server answered a half-sent write")
                if abort { c.abort() } else { c.close() }
                // Wait until the server has seen the disconnect (only `w` is left).
                let gone = waitUntil(timeout: 5, interval: 0.05) {
                    (try? keyValues(w.request("s"))["connections"]) == "1"
                }
                #expect(gone, "server still counts the dropped connection after 5 s")
                let (d, v) = try w.read(1)
                #expect(d == Array("before".utf8) && v == 1, "dropped write (abort: \(abort)) changed the mailbox: \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            }
            // The netcat form too.
            let c = try dial.connect()
            try c.send("w 1\npartial line without newline")
            c.close()
            waitUntil(timeout: 5, interval: 0.05) { (try? keyValues(w.request("s"))["connections"]) == "1" }
            let (d, v) = try w.read(1)
            #expect(d == Array("before".utf8) && v == 1, "dropped netcat write changed the mailbox: v\(v)")
        }
    }

    @Test("--io-timeout counts gaps, not the whole request: a slow steady writer succeeds", arguments: E2E.builtBackends)
    func slowSteadyWriter(backend: String) throws {
        try withServer(backend, options: ["--io-timeout", "1"]) { server, _ in
            let c = try server.connect()
            try c.send("w 1 8\n")
            for b in Array("abcdefgh".utf8) {
                #expect(c.staysSilent(for: 0.4), "answered before the data was complete")
                try c.send([b])
            }
            #expect(try c.readLine() == "ok 1", "write whose bytes arrived every 0.4 s (3.2 s in all) with --io-timeout 1")
            #expect(try c.read(1).data == Array("abcdefgh".utf8))
        }
    }

    @Test("default --max-clients is 256", arguments: E2E.builtBackends.prefix(1))
    func defaultMaxClients(backend: String) throws {
        try withServer(backend) { server, _ in
            var conns: [Conn] = []
            for i in 0..<256 {
                let c = try server.connect()
                conns.append(c)
                if i % 64 == 63 { #expect(try c.request("r 0") == "ok 0 0", "connection \(i + 1)") }
            }
            #expect(try conns[255].request("r 1") == "ok 0 0", "256th connection served")
            let extra = try server.connect()
            let line = try extra.readLine()
            #expect(line.hasPrefix("err busy"), "257th connection got \(line.debugDescription)")
            #expect(extra.waitForClose() == .closed)
        }
    }
}
