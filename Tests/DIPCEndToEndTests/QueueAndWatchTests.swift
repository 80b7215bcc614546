import Foundation
import Testing

/// SPEC §2 `p`, `c` and `r N VERSION WAIT_MS` over raw sockets: FIFO order, room,
/// versions, blocking and waking (also across servers sharing a store), WAIT_MS limits,
/// disconnects while waiting, and shutdown of waiting clients.
///
/// "A client is blocked" is established by sending its request and checking that no reply
/// arrives for `blockedCheck` seconds; every other wait has a deadline.
@Suite("queues and watches")
struct QueueAndWatchTests {
    /// How long a request must stay unanswered to count as waiting.
    static let blockedCheck: Double = 0.2
    /// A woken waiter must answer well within this (its WAIT_MS is much longer).
    static let wakeBound: Double = 2.5

    @Test("`c N` on an empty mailbox: `err empty`, connection stays open; `c N 200` waits ~200 ms", arguments: E2E.builtBackends)
    func consumeEmpty(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            let l1 = try c.request("c 0")
            #expect(l1.hasPrefix("err empty"), "c 0 on an empty mailbox -> \(l1.debugDescription)")
            #expect(try c.request("r 0") == "ok 0 0", "after err empty: connection unusable, or `c` changed the version")
            let t = monotonicNow()
            let l2 = try c.request("c 0 200")
            let took = monotonicNow() - t
            #expect(l2.hasPrefix("err empty"), "c 0 200 on an empty mailbox -> \(l2.debugDescription)")
            #expect(took >= 0.18, "c 0 200 answered after \(took) s (should wait ~200 ms)")
            #expect(took < 3, "c 0 200 answered only after \(took) s")
            #expect(try c.request("r 0") == "ok 0 0", "after `c 0 200` -> err empty")
        }
    }

    @Test("p/c: FIFO order, versions per change, binary and empty messages; emptied mailbox reads `ok 0 VERSION`", arguments: E2E.builtBackends)
    func fifoOrder(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            let all = (0...255).map { UInt8($0) }
            let messages: [[UInt8]] = [
                all + Array("\nr 0\nc 0\n\r\n".utf8) + all.reversed(),  // binary, 524 bytes
                [],  // empty message
                Array("hello".utf8),
            ]
            for (i, m) in messages.enumerated() {
                try c.send(Array("p 0 \(m.count)\n".utf8) + m)
                #expect(try c.readLine() == "ok \(i + 1)", "p 0 \(m.count) (push \(i + 1))")
            }
            for (i, m) in messages.enumerated() {
                try c.send("c 0\n")
                let line = try c.readLine()
                #expect(line == "ok \(m.count) \(4 + i)", "c 0 (take \(i + 1)) -> \(line.debugDescription)")
                if line.hasPrefix("ok ") {
                    let n = Int(line.split(separator: " ")[1]) ?? 0
                    let d = try c.readBytes(n)
                    #expect(d == m, "take \(i + 1): got \(d.count) bytes, expected message \(i + 1) of \(m.count) bytes")
                }
            }
            #expect(try c.request("r 0") == "ok 0 6", "r 0 on the emptied mailbox")
            let l = try c.request("c 0")
            #expect(l.hasPrefix("err empty"), "c 0 after taking all -> \(l.debugDescription)")
            #expect(try c.request("r 0") == "ok 0 6", "err empty must not change the version")
            #expect(try c.request("r 1") == "ok 0 0", "other mailboxes untouched")
        }
    }

    @Test("`r` after pushes reads the newest; `w` replaces the whole list", arguments: E2E.builtBackends)
    func readNewestAndWriteReplaces(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("p 2 5\nfirstp 2 6\nsecondp 2 5\nthird")
            #expect(try c.readLine() == "ok 1")
            #expect(try c.readLine() == "ok 2")
            #expect(try c.readLine() == "ok 3")
            var (d, v) = try c.read(2)
            #expect(d == Array("third".utf8) && v == 3, "r 2 after 3 pushes: \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            // `r` does not take anything.
            #expect(try c.read(2).data == Array("third".utf8))
            #expect(try c.write(2, "only") == 4, "w 2 after 3 pushes")
            (d, v) = try c.read(2)
            #expect(d == Array("only".utf8) && v == 4, "r 2 after w")
            try c.send("c 2\n")
            (d, v) = try c.readDataReply(request: "c 2")
            #expect(d == Array("only".utf8) && v == 5, "c 2 after w must return the w value: \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            let l = try c.request("c 2")
            #expect(l.hasPrefix("err empty"), "second c 2 after w (the pushes must be gone) -> \(l.debugDescription)")
            #expect(try c.request("r 2") == "ok 0 5")
        }
    }

    @Test("room: 8 bytes overhead per message, capacity mailbox+8; `err full` stays open, `err size` closes", arguments: E2E.builtBackends)
    func room(backend: String) throws {
        try withServer(backend, mailboxes: 2, mailboxKB: 1) { server, _ in
            let c = try server.connect()
            let msg = [UInt8](repeating: 0x5a, count: 100)
            for i in 1...9 {
                try c.send(Array("p 0 100\n".utf8) + msg)
                #expect(try c.readLine() == "ok \(i)", "push \(i) of 100 bytes into 1 KiB (9 x 108 = 972 <= 1032)")
            }
            try c.send(Array("p 0 100\n".utf8) + msg)
            let full = try c.readLine()
            #expect(full.hasPrefix("err full"), "10th push of 100 bytes (10 x 108 = 1080 > 1032) -> \(full.debugDescription)")
            #expect(try c.request("r 0") == "ok 100 9", "after err full: connection open, version unchanged")
            _ = try c.readBytes(100)
            // Exactly S bytes fit an empty mailbox.
            let big = randomBytes(1024)
            try c.send(Array("p 1 1024\n".utf8) + big)
            #expect(try c.readLine() == "ok 1", "p 1 1024 into an empty 1 KiB mailbox")
            // ...and then nothing more.
            let l = try c.request("p 1 0")
            #expect(l.hasPrefix("err full"), "p 1 0 into a mailbox holding 1024 bytes (1032 + 8 > 1032) -> \(l.debugDescription)")
            try c.send("c 1\n")
            let (d, v) = try c.readDataReply(request: "c 1")
            #expect(d == big && v == 2, "c 1 returns the 1024-byte message: \(d.count) bytes v\(v)")
            // A message that could never fit: err size at the header, connection closed.
            let c2 = try server.connect()
            try c2.send("p 0 1025\n")
            let size = try c2.readLine()
            #expect(size.hasPrefix("err size"), "p 0 1025 on a 1 KiB mailbox -> \(size.debugDescription)")
            let after = c2.waitForClose()
            #expect(after == .closed, "after err size: \(after)")
            #expect(try server.connect().request("r 0") == "ok 100 9", "err size changed the mailbox")
        }
    }

    @Test("a blocked `c N 5000` is woken by a push from another connection", arguments: E2E.builtBackends)
    func consumerWokenByPush(backend: String) throws {
        try withServer(backend) { server, _ in
            let consumer = try server.connect()
            let producer = try server.connect()
            try consumer.send("c 1 5000\n")
            #expect(consumer.staysSilent(for: Self.blockedCheck), "c 1 5000 on an empty mailbox answered at once")
            let t = monotonicNow()
            try producer.send("p 1 4\nping")
            #expect(try producer.readLine() == "ok 1")
            let (d, v) = try consumer.readDataReply(request: "c 1 5000")
            let took = monotonicNow() - t
            #expect(d == Array("ping".utf8) && v == 2, "woken consumer got \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            #expect(took < Self.wakeBound, "consumer answered \(took) s after the push (WAIT_MS 5000)")
            #expect(try producer.request("r 1") == "ok 0 2", "the message was taken once")
        }
    }

    @Test("a consumer blocked on server A is woken by a push on server B (same --name)", arguments: E2E.builtBackends)
    func consumerWokenAcrossServers(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            let b = try scope.start(backend)
            let consumer = try a.connect()
            let producer = try b.connect()
            try consumer.send("c 1 5000\n")
            #expect(consumer.staysSilent(for: Self.blockedCheck), "c 1 5000 on an empty mailbox answered at once")
            let t = monotonicNow()
            try producer.send("p 1 6\nfrom B")
            #expect(try producer.readLine() == "ok 1", "p 1 on server B")
            let (d, v) = try consumer.readDataReply(request: "c 1 5000 on server A")
            let took = monotonicNow() - t
            #expect(d == Array("from B".utf8) && v == 2, "consumer on A got \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            #expect(took < Self.wakeBound, "consumer on A answered \(took) s after the push on B (WAIT_MS 5000)")
            #expect(try producer.request("r 1") == "ok 0 2", "B sees the take made through A")
        }
    }

    @Test("a blocked `p N LEN 5000` on a full mailbox succeeds when another client makes room", arguments: E2E.builtBackends)
    func producerWokenByConsume(backend: String) throws {
        try withServer(backend, mailboxes: 2, mailboxKB: 1) { server, _ in
            let producer = try server.connect()
            let consumer = try server.connect()
            for i in 1...9 {
                try producer.send(Array("p 0 100\n".utf8) + [UInt8](repeating: UInt8(i), count: 100))
                #expect(try producer.readLine() == "ok \(i)")
            }
            let last = [UInt8](repeating: 0xee, count: 100)
            try producer.send(Array("p 0 100 5000\n".utf8) + last)
            #expect(producer.staysSilent(for: Self.blockedCheck), "p 0 100 5000 on a full mailbox answered at once")
            let t = monotonicNow()
            try consumer.send("c 0\n")
            let (d, v) = try consumer.readDataReply(request: "c 0")
            #expect(d == [UInt8](repeating: 1, count: 100) && v == 10, "c 0 took the oldest: \(d.prefix(1)) v\(v)")
            let line = try producer.readLine()
            let took = monotonicNow() - t
            #expect(line == "ok 11", "blocked p 0 100 5000 after a take -> \(line.debugDescription)")
            #expect(took < Self.wakeBound, "blocked push answered \(took) s after the take (WAIT_MS 5000)")
            // The queue now holds messages 2...9 and the late one, in that order.
            try consumer.send("c 0\n")
            #expect(try consumer.readDataReply(request: "c 0").data == [UInt8](repeating: 2, count: 100))
            let (newest, nv) = try consumer.read(0)
            #expect(newest == last && nv == 12, "r 0 after the late push and a take: v\(nv)")
        }
    }

    @Test("watch: `r N VERSION WAIT_MS` waits for a change, times out with the current value, or answers at once", arguments: E2E.builtBackends)
    func watch(backend: String) throws {
        try withServer(backend) { server, _ in
            let watcher = try server.connect()
            let writer = try server.connect()
            try watcher.send("r 1 0 5000\n")
            #expect(watcher.staysSilent(for: Self.blockedCheck), "r 1 0 5000 on a never-written mailbox answered at once")
            let t = monotonicNow()
            #expect(try writer.write(1, "abc") == 1)
            let (d, v) = try watcher.readDataReply(request: "r 1 0 5000")
            let took = monotonicNow() - t
            #expect(d == Array("abc".utf8) && v == 1, "watcher got \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            #expect(took < Self.wakeBound, "watcher answered \(took) s after the write (WAIT_MS 5000)")

            // No change: answers after WAIT_MS with what is there.
            let t2 = monotonicNow()
            try watcher.send("r 1 1 300\n")
            #expect(try watcher.readLine() == "ok 3 1", "r 1 1 300 with no change")
            let took2 = monotonicNow() - t2
            #expect(try watcher.readBytes(3) == Array("abc".utf8))
            #expect(took2 >= 0.28, "r 1 1 300 answered after \(took2) s (should wait ~300 ms)")
            #expect(took2 < 3, "r 1 1 300 answered only after \(took2) s")

            // Version already above: at once, whatever WAIT_MS.
            let t3 = monotonicNow()
            try watcher.send("r 1 0 0\n")
            #expect(try watcher.readLine() == "ok 3 1", "r 1 0 0 when the version is 1")
            #expect(try watcher.readBytes(3) == Array("abc".utf8))
            #expect(monotonicNow() - t3 < 1, "r 1 0 0 did not answer at once")

            // WAIT_MS 0 with no change: at once as well.
            try watcher.send("r 1 1 0\n")
            #expect(try watcher.readLine() == "ok 3 1", "r 1 1 0")
            _ = try watcher.readBytes(3)
        }
    }

    @Test("watch on server A wakes on a `w`, `p` or `c` made through server B; times out with the current value", arguments: E2E.builtBackends)
    func watchAcrossServers(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            let b = try scope.start(backend)
            let watcher = try a.connect()
            let changer = try b.connect()
            let changes: [(request: [UInt8], takes: Bool, newest: String)] = [
                (Array("w 1 3\nabc".utf8), false, "abc"), (Array("p 1 3\ndef".utf8), false, "def"), (Array("c 1\n".utf8), true, "def"),
            ]
            for (i, change) in changes.enumerated() {
                let what = String(decoding: change.request.prefix(5), as: UTF8.self).debugDescription
                try watcher.send("r 1 \(i) 5000\n")
                #expect(watcher.staysSilent(for: Self.blockedCheck), "r 1 \(i) 5000 answered before \(what) on B")
                let t = monotonicNow()
                try changer.send(change.request)
                if change.takes {
                    #expect(try changer.readDataReply(request: "c 1 on B").data == Array("abc".utf8))
                } else {
                    #expect(try changer.readLine() == "ok \(i + 1)", "\(what) on B")
                }
                let (d, v) = try watcher.readDataReply(request: "r 1 \(i) 5000 on A")
                let took = monotonicNow() - t
                #expect(String(decoding: d, as: UTF8.self) == change.newest && v == UInt64(i + 1), "watcher after \(what): \(d) v\(v)")
                #expect(took < Self.wakeBound, "watcher on A answered \(took) s after \(what) on B")
            }
            let t = monotonicNow()
            try watcher.send("r 1 3 300\n")
            let (d, v) = try watcher.readDataReply(request: "r 1 3 300")
            #expect(String(decoding: d, as: UTF8.self) == "def" && v == 3, "r 1 3 300 with no change: \(d) v\(v)")
            #expect(monotonicNow() - t >= 0.28, "r 1 3 300 answered before its wait was over")
        }
    }

    @Test("WAIT_MS up to 3600000 is accepted; 3600001 is `err syntax` (connection stays open)", arguments: E2E.builtBackends)
    func waitLimit(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            #expect(try c.write(1, "abc") == 1)
            // Requests that complete at once, so the hour is never waited.
            let t = monotonicNow()
            try c.send("r 1 0 3600000\n")
            #expect(try c.readLine() == "ok 3 1", "r 1 0 3600000 with version 1")
            _ = try c.readBytes(3)
            try c.send("p 1 2 3600000\nxy")
            #expect(try c.readLine() == "ok 2", "p 1 2 3600000 with room")
            try c.send("c 1 3600000\n")
            let (d, v) = try c.readDataReply(request: "c 1 3600000")
            #expect(d == Array("abc".utf8) && v == 3, "c 1 3600000 with messages")
            #expect(monotonicNow() - t < 3, "requests with WAIT_MS 3600000 that could complete did not answer at once")

            let l1 = try c.request("r 1 0 3600001")
            #expect(l1.hasPrefix("err syntax"), "r 1 0 3600001 -> \(l1.debugDescription)")
            #expect(try c.request("r 0") == "ok 0 0", "after r ... 3600001")
            let l2 = try c.request("c 1 3600001")
            #expect(l2.hasPrefix("err syntax"), "c 1 3600001 -> \(l2.debugDescription)")
            #expect(try c.request("r 0") == "ok 0 0", "after c ... 3600001")
            // Good LEN, bad WAIT_MS: the data is read and dropped.
            try c.send("p 1 3 3600001\nzzz")
            let l3 = try c.readLine()
            #expect(l3.hasPrefix("err syntax"), "p 1 3 3600001 + data -> \(l3.debugDescription)")
            #expect(try c.request("r 0") == "ok 0 0", "the 3 data bytes after `p 1 3 3600001` were not skipped")
            let (d2, v2) = try c.read(1)
            #expect(d2 == Array("xy".utf8) && v2 == 3, "rejected requests changed mailbox 1: v\(v2)")
        }
    }

    @Test("a client that disconnects while waiting in `c` takes nothing", arguments: E2E.builtBackends)
    func disconnectWhileWaiting(backend: String) throws {
        try withServer(backend) { server, _ in
            let b = try server.connect()
            // Three rounds, each on a fresh mailbox (1, 2, 3).
            for m in 1...3 {
                let a = try server.connect()
                try a.send("c \(m) 3000\n")
                #expect(a.staysSilent(for: Self.blockedCheck), "mailbox \(m): c \(m) 3000 on an empty mailbox answered at once")
                a.close()
                // Push right after the disconnect: the dead waiter must not take it.
                try b.send("p \(m) 5\nhello")
                let pushed = try b.readLine()
                #expect(pushed == "ok 1", "mailbox \(m): p \(m) 5 -> \(pushed.debugDescription)")
                // Wait until the server is done with A's connection (only B left open).
                let gone = waitUntil(timeout: 5, interval: 0.05) {
                    (try? keyValues(b.request("s"))["connections"]) == "1"
                }
                #expect(gone, "mailbox \(m): server still counts A's connection 5 s after it closed")
                try b.send("c \(m)\n")
                let line = try b.readLine()
                #expect(
                    line == "ok 5 2",
                    "mailbox \(m): c \(m) on B after A disconnected while waiting in `c \(m) 3000` -> \(line.debugDescription) (expected the pushed message, version 2)")
                if line.hasPrefix("ok ") { _ = try b.readBytes(Int(line.split(separator: " ")[1]) ?? 0) }
            }
        }
    }

    @Test("a client that disconnects (FIN) while waiting in `p` pushes nothing", arguments: E2E.builtBackends)
    func disconnectWhilePushing(backend: String) throws {
        try withServer(backend) { server, _ in
            let b = try server.connect()
            // A full mailbox: 4096 - 8 bytes of message plus its 8-byte overhead.
            let full = [UInt8](repeating: 0x46, count: 4096 - 8)
            #expect(try b.write(1, full) == 1)
            let a = try server.connect()
            try a.send("p 1 4 5000\nLATE")
            #expect(a.staysSilent(for: Self.blockedCheck), "p 1 4 5000 into a full mailbox answered at once")
            a.close()  // an orderly close (FIN), as most clients end a connection
            let gone = waitUntil(timeout: 4, interval: 0.05) {
                (try? keyValues(b.request("s"))["connections"]) == "1"
            }
            #expect(gone, "server still counts the pushing client 4 s after it closed (WAIT_MS is 5000)")
            // Make room: the departed client's push must not land in it.
            try b.send("c 1\n")
            let took = try b.readLine()
            #expect(took == "ok \(full.count) 2", "c 1 on the full mailbox -> \(took.debugDescription)")
            if took.hasPrefix("ok ") { #expect(try b.readBytes(full.count) == full) }
            let after = try b.request("c 1")
            #expect(after.hasPrefix("err empty"), "c 1 after the pushing client left -> \(after.debugDescription) (its push was made for nobody)")
            #expect(try b.request("r 1") == "ok 0 2", "mailbox 1 changed after the pushing client left")
        }
    }

    @Test("dipcrm: a client blocked in `c` gets `err shutdown` and EOF; dipcrm exits 0 promptly", arguments: E2E.builtBackends)
    func shutdownWakesWaiters(backend: String) throws {
        try withScope { scope in
            let server = try scope.start(backend)
            let waiter = try server.connect()
            try waiter.send("c 0 30000\n")
            #expect(waiter.staysSilent(for: Self.blockedCheck), "c 0 30000 on an empty mailbox answered at once")
            let watcher = try server.connect()
            try watcher.send("r 1 0 30000\n")
            #expect(watcher.staysSilent(for: Self.blockedCheck), "r 1 0 30000 on a never-written mailbox answered at once")
            let t = monotonicNow()
            let rm = try scope.dipcrm(server.port)
            let took = monotonicNow() - t
            #expect(rm.status == 0 && !rm.timedOut, "\(rm)")
            #expect(took < 6, "dipcrm took \(took) s with clients waiting in c/r (they must be told err shutdown)")
            for (what, c) in [("c 0 30000", waiter), ("r 1 0 30000", watcher)] {
                let line = try? c.readLine()
                #expect(line?.hasPrefix("err shutdown") == true, "client waiting in \(what) got \(String(describing: line))")
                let after = c.waitForClose(timeout: 5)
                #expect(after == .closed, "client waiting in \(what) after err shutdown: \(after)")
            }
            #expect(server.waitGone(timeout: 5), "server still alive after dipcrm")
        }
    }

    @Test("`s` counts pushes and takes", arguments: E2E.builtBackends)
    func statsCounters(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("p 3 1\nap 3 1\nb")
            #expect(try c.readLine() == "ok 1")
            #expect(try c.readLine() == "ok 2")
            try c.send("c 3\n")
            #expect(try c.readDataReply(request: "c 3").data == Array("a".utf8))
            let line = try c.request("s")
            #expect(line.hasPrefix("ok "), "s -> \(line.debugDescription)")
            let kv = keyValues(line)
            let pushes = kv["pushes"].flatMap { Int($0) }
            let takes = kv["takes"].flatMap { Int($0) }
            #expect((pushes ?? 0) >= 2, "pushes after 2 pushes: \(line.debugDescription)")
            #expect((takes ?? 0) >= 1, "takes after 1 take: \(line.debugDescription)")
        }
    }
}
