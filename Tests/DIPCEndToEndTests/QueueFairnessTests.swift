import Foundation
import Testing

/// Arrival order of waiting `c` and `p` requests (SPEC §2 "waiters are served in arrival
/// order"), across two servers sharing a store; waiters that give up, disconnect or whose
/// server is killed leave no hole in the line; and many producers and consumers on two
/// servers move every acknowledged item exactly once.
///
/// "Waiter k is in line" is established by the server's `queued` counter in `s` (requests
/// holding a ticket), so the arrival order is known, not guessed from sleeps.
@Suite("queue fairness")
struct QueueFairnessTests {
    static let blockedCheck: Double = 0.3

    /// Waits until `control`'s server reports `queued` == `count`.
    static func waitQueued(_ control: Conn, _ count: Int, _ what: String) -> Bool {
        let ok = waitUntil(timeout: 5, interval: 0.01) {
            (try? keyValues(control.request("s"))["queued"]) == String(count)
        }
        if !ok { Issue.record("\(what): the server never reported queued=\(count)") }
        return ok
    }

    /// Starts servers A and B sharing one store, and the control connections that read their `queued`.
    static func twoServers(_ scope: Scope, _ backend: String, mailboxKB: Int = 4) throws -> [(server: Server, control: Conn)] {
        let a = try scope.start(backend, mailboxKB: mailboxKB)
        let b = try scope.start(backend, mailboxKB: mailboxKB)
        return [(a, try a.connect()), (b, try b.connect())]
    }

    @Test("consumers waiting on two servers get messages in the order they started waiting; one that gives up or disconnects leaves no hole", arguments: E2E.builtBackends)
    func consumersInArrivalOrder(backend: String) throws {
        try withScope { scope in
            let servers = try Self.twoServers(scope, backend)
            var joined = [0, 0]
            var consumers: [Conn] = []
            // Six consumers, alternating servers; #2 gives up after 1 s, #4 disconnects.
            for k in 0..<6 {
                let s = k % 2
                let c = try servers[s].server.connect()
                try c.send(k == 2 ? "c 0 1000\n" : "c 0 20000\n")
                consumers.append(c)
                joined[s] += 1
                // #2 may already have given up (and answered) on a slow machine.
                let inLine = waitUntil(timeout: 5, interval: 0.01) {
                    let gone = s == 0 && consumers.count > 2 && !consumers[2].staysSilent(for: 0.001) ? 1 : 0
                    return (try? keyValues(servers[s].control.request("s"))["queued"]) == String(joined[s] - gone)
                }
                guard inLine else {
                    Issue.record("consumer \(k) never showed as queued on server \(s)")
                    return
                }
            }
            // #2 times out in line (not at the head): err empty, and it leaves.
            let gaveUp = try consumers[2].readLine()
            #expect(gaveUp.hasPrefix("err empty"), "consumer 2 (c 0 1000, third in line) -> \(gaveUp.debugDescription)")
            consumers[4].close()
            guard Self.waitQueued(servers[0].control, 1, "after #2 gave up and #4 left") else { return }

            let producer = try servers[1].server.connect()
            let expected = [0, 1, 3, 5]
            for (i, k) in expected.enumerated() {
                try producer.send("p 0 2\nm\(i)")
                #expect(try producer.readLine().hasPrefix("ok "), "push m\(i)")
                let (d, _) = try consumers[k].readDataReply(request: "c 0 20000 (consumer \(k))")
                #expect(String(decoding: d, as: UTF8.self) == "m\(i)", "consumer \(k) (the \(i + 1)th still waiting) got \(String(decoding: d, as: UTF8.self).debugDescription), expected m\(i)")
            }
            #expect(try producer.request("r 0").hasPrefix("ok 0 "), "a message is left over: a consumer got two, or the one that left took one")
        }
    }

    @Test("producers waiting for room are served in arrival order: a small message does not overtake a large one", arguments: E2E.builtBackends)
    func producersInArrivalOrder(backend: String) throws {
        try withScope { scope in
            let servers = try Self.twoServers(scope, backend, mailboxKB: 1)
            let filler = try servers[0].server.connect()
            // Two messages of 508 bytes fill the 1 KiB mailbox (2 x 516 = 1032).
            for i in 1...2 {
                try filler.send(Array("p 0 508\n".utf8) + [UInt8](repeating: UInt8(i), count: 508))
                #expect(try filler.readLine() == "ok \(i)")
            }
            let large = try servers[0].server.connect()
            try large.send(Array("p 0 600 20000\n".utf8) + [UInt8](repeating: 0x4c, count: 600))
            guard Self.waitQueued(servers[0].control, 1, "large producer") else { return }
            let small = try servers[1].server.connect()
            try small.send(Array("p 0 100 20000\n".utf8) + [UInt8](repeating: 0x73, count: 100))
            guard Self.waitQueued(servers[1].control, 1, "small producer") else { return }

            // One take frees 516 bytes: enough for the small message, not for the large one
            // at the head of the line, so both keep waiting.
            let consumer = try servers[1].server.connect()
            try consumer.send("c 0\n")
            #expect(try consumer.readDataReply(request: "c 0").data.first == 1)
            #expect(small.staysSilent(for: Self.blockedCheck), "the small push overtook the large one waiting before it")
            try consumer.send("c 0\n")
            #expect(try consumer.readDataReply(request: "c 0").data.first == 2)
            let largeReply = try large.readLine()
            let smallReply = try small.readLine()
            #expect(largeReply == "ok 5" && smallReply == "ok 6", "large then small: \(largeReply.debugDescription), \(smallReply.debugDescription)")
            try consumer.send("c 0\n")
            #expect(try consumer.readDataReply(request: "c 0").data.first == 0x4c, "the oldest message is the large one")
        }
    }

    @Test("a push with WAIT_MS 0 never waits, so it takes no place in line: it fits now, beside a large producer still waiting", arguments: E2E.builtBackends)
    func zeroWaitPushTakesNoPlaceInLine(backend: String) throws {
        try withScope { scope in
            let servers = try Self.twoServers(scope, backend, mailboxKB: 1)
            let filler = try servers[0].server.connect()
            // One message of 508 bytes (516 with its overhead) leaves room for 100, not for 600.
            try filler.send(Array("p 0 508\n".utf8) + [UInt8](repeating: 1, count: 508))
            #expect(try filler.readLine() == "ok 1")
            let large = try servers[0].server.connect()
            try large.send(Array("p 0 600 20000\n".utf8) + [UInt8](repeating: 0x4c, count: 600))
            guard Self.waitQueued(servers[0].control, 1, "large producer") else { return }
            let small = try servers[1].server.connect()
            try small.send(Array("p 0 100\n".utf8) + [UInt8](repeating: 0x73, count: 100))
            #expect(try small.readLine() == "ok 2", "SPEC: err full only when the message does not fit")
            #expect(large.staysSilent(for: Self.blockedCheck), "the large push cannot fit yet")
            try small.send("c 0\n")
            #expect(try small.readDataReply(request: "c 0").data.first == 1)
            try small.send("c 0\n")
            #expect(try small.readDataReply(request: "c 0").data.first == 0x73)
            #expect(try large.readLine().hasPrefix("ok "), "the large push fits once the mailbox is empty")
        }
    }

    @Test("a waiter's server is killed (SIGKILL) while its consumers stand first in line: the line moves on", arguments: E2E.builtBackends)
    func killedWaitersDoNotBlockTheLine(backend: String) throws {
        try withScope { scope in
            let servers = try Self.twoServers(scope, backend)
            var doomed: [Conn] = []
            for k in 0..<2 {
                let c = try servers[0].server.connect()
                try c.send("c 0 20000\n")
                guard Self.waitQueued(servers[0].control, k + 1, "consumer \(k) on A") else { return }
                doomed.append(c)
            }
            let survivor = try servers[1].server.connect(timeout: 20)
            try survivor.send("c 0 20000\n")
            guard Self.waitQueued(servers[1].control, 1, "consumer on B") else { return }
            servers[0].server.kill(SIGKILL)
            try #require(servers[0].server.waitGone(timeout: 5), "server A survived SIGKILL")
            let producer = try servers[1].server.connect()
            let t = monotonicNow()
            try producer.send("p 0 5\nafter")
            #expect(try producer.readLine() == "ok 1")
            let (d, _) = try survivor.readDataReply(request: "c 0 20000 on B")
            let took = monotonicNow() - t
            #expect(String(decoding: d, as: UTF8.self) == "after", "the consumer behind the dead ones got \(d)")
            // SPEC §4: on etcd a dead server's places vanish with its lease, within 10 s.
            let bound: Double = backend == "etcd" ? 10 : 5
            #expect(took < bound, "the consumer behind two killed waiters answered only after \(took) s")
            // The line is usable afterwards, also without waiting.
            try producer.send("p 0 4\nnext")
            #expect(try producer.readLine() == "ok 3")
            try producer.send("c 0\n")
            #expect(try producer.readDataReply(request: "c 0").data == Array("next".utf8))
        }
    }

    @Test("4 producers and 4 consumers on two servers through a 1 KiB mailbox: every acknowledged item is taken exactly once, each producer's in order", arguments: E2E.builtBackends)
    func manyProducersAndConsumers(backend: String) throws {
        try withScope { scope in
            let servers = try Self.twoServers(scope, backend, mailboxKB: 1)
            let ports = servers.map(\.server.port)
            let producers = 4, consumers = 4, perProducer = 60
            let total = producers * perProducer
            let acked = Locked<Set<String>>([])
            let taken = Locked<[(version: UInt64, item: String)]>([])
            let failures = Locked<[String]>([])
            let finished = runThreads(producers + consumers, timeout: 60) { index in
                let port = ports[index % 2]
                do {
                    let c = try Conn(port: port, timeout: 30)
                    if index < producers {
                        for i in 0..<perProducer {
                            // Padded so that a few messages fill the mailbox and producers wait.
                            let item = "p\(index)-\(String(format: "%04d", i))" + String(repeating: ".", count: 150)
                            let line = try c.request("p 0 \(item.utf8.count) 20000\n" + item)
                            guard line.hasPrefix("ok ") else {
                                failures.withValue { $0.append("producer \(index) item \(i): \(line)") }
                                return
                            }
                            acked.withValue { _ = $0.insert(item) }
                        }
                    } else {
                        while taken.get.count < total {
                            try c.send("c 0 300\n")
                            let line = try c.readLine()
                            if line.hasPrefix("err empty") { continue }
                            let f = line.split(separator: " ")
                            guard f.count == 3, f[0] == "ok", let n = Int(f[1]), let v = UInt64(f[2]) else {
                                failures.withValue { $0.append("consumer \(index): \(line)") }
                                return
                            }
                            let item = String(decoding: try c.readBytes(n), as: UTF8.self)
                            taken.withValue { $0.append((v, item)) }
                        }
                    }
                } catch {
                    failures.withValue { $0.append("thread \(index): \(error)") }
                }
            }
            #expect(finished, "producers and consumers did not finish within 60 s")
            #expect(failures.get.isEmpty, "\(failures.get.prefix(5))")
            let items = taken.get.map(\.item)
            #expect(items.count == total && Set(items).count == total, "taken \(items.count) items, \(Set(items).count) distinct, expected \(total)")
            #expect(Set(items) == acked.get, "taken items differ from acknowledged pushes")
            // The queue is FIFO: ordered by the version of their take, each producer's items keep their order.
            let byVersion = taken.get.sorted { $0.version < $1.version }.map(\.item)
            for p in 0..<producers {
                let mine = byVersion.filter { $0.hasPrefix("p\(p)-") }
                #expect(mine == mine.sorted(), "producer \(p)'s items were taken out of order")
            }
        }
    }
}
