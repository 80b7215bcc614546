import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--backend etcd` with real binaries on private etcd clusters (SPEC §1, §4): start-up
/// failures, servers sharing a store, cross-server waiting, a dead server's place in
/// line, the etcd leader killed, a server cut off from etcd.
@Suite("etcd backend", .serialized, .requires(.etcd))
struct EtcdTests {
    /// Runs `body` with a private cluster of `nodes` nodes and a scope; the scope's
    /// servers stop before the cluster does, and both always.
    func withCluster(nodes: Int = 1, _ body: (EtcdCluster, Scope) throws -> Void) throws {
        let cluster = try EtcdCluster(nodes: nodes)
        defer { cluster.stop() }
        try withScope { scope in
            do {
                try body(cluster, scope)
            } catch {
                // The servers' logs say why, before the scope removes them.
                for port in scope.recordedPorts() {
                    let log = (try? String(contentsOfFile: "\(scope.runtimeDir)/dipc-\(port).log", encoding: .utf8)) ?? ""
                    Issue.record("server \(port) log tail: \(log.suffix(1500))")
                }
                throw error
            }
        }
    }

    func etcdOptions(_ cluster: EtcdCluster, _ extra: [String] = []) -> [String] {
        ["--etcd", cluster.endpoints.joined(separator: ",")] + extra
    }

    /// A one-line failure on stderr, exit 1, no runtime record.
    func expectStartupFailure(_ scope: Scope, _ args: [String], containing text: String) throws {
        let port = try freePort()
        let r = try scope.dipc(args + ["\(port)", "1"])
        #expect(r.status == 1 && r.stdout.isEmpty, "\(r)")
        #expect(r.err.hasPrefix("dipc: ") && r.err.split(separator: "\n").count == 1 && r.err.contains(text), "\(r)")
        #expect(scope.readRecord(port) == nil, "no runtime record after a failed start: \(r)")
    }

    @Test("start-up fails in one line: no endpoint within 10 s, a mailbox over 1024 KiB, another geometry or coordinator")
    func startupFailures() throws {
        try withCluster { cluster, scope in
            let nobody = "http://127.0.0.1:\(try freePort())"
            let began = monotonicNow()
            try expectStartupFailure(scope, ["--backend", "etcd", "--name", scope.name, "--etcd", nobody, "2", "1"],
                                     containing: "no etcd endpoint answered within 10 s")
            let took = monotonicNow() - began
            #expect(took >= 9.5 && took < 20, "gave up after \(took) s")

            try expectStartupFailure(scope, ["--backend", "etcd", "--name", scope.name] + etcdOptions(cluster) + ["2", "1025"],
                                     containing: "1024 KiB")

            try scope.start("etcd", mailboxes: 4, mailboxKB: 4, options: etcdOptions(cluster))
            try expectStartupFailure(scope, ["--backend", "etcd", "--name", scope.name] + etcdOptions(cluster) + ["5", "4"],
                                     containing: "geometry differs")
            try expectStartupFailure(
                scope, ["--backend", "etcd", "--name", scope.name, "--coordinator", "phase-fair"] + etcdOptions(cluster) + ["4", "4"],
                containing: "uses the fifo coordinator, not phase-fair")
        }
    }

    @Test("two servers share a store through one cluster; i says backend=etcd; the content outlives both")
    func twoServersShare() throws {
        try withCluster { cluster, scope in
            let a = try scope.start("etcd", options: etcdOptions(cluster))
            let b = try scope.start("etcd", options: etcdOptions(cluster))
            #expect(try a.info().fields["backend"] == "etcd")
            let ca = try a.connect(), cb = try b.connect()
            #expect(try ca.write(1, "from A") == 1)
            let seen = try cb.read(1)
            #expect(seen.data == Array("from A".utf8) && seen.version == 1)
            #expect(try cb.write(1, "from B") == 2)
            #expect(try ca.read(1).data == Array("from B".utf8))
            ca.close()
            cb.close()
            #expect(try scope.dipcrm(a.port).status == 0)
            #expect(try scope.dipcrm(b.port).status == 0)
            // Every server gone: the mailboxes stay in etcd.
            let c = try scope.start("etcd", options: etcdOptions(cluster))
            let again = try c.connect().read(1)
            #expect(again.data == Array("from B".utf8) && again.version == 2)
        }
    }

    @Test("i and dipc-client info/ls show backend etcd and the endpoints; a host-store server beside it shows -")
    func infoAndListShowEndpoints() throws {
        try withCluster(nodes: 3) { cluster, scope in
            let endpoints = cluster.endpoints.joined(separator: ",")
            let server = try scope.start("etcd", options: etcdOptions(cluster))
            let other = try scope.start("sysv", name: scope.newName())

            let info = try server.info()
            #expect(info.fields["backend"] == "etcd" && info.fields["etcd"] == endpoints, "\(info.line)")
            #expect(try other.info().fields["etcd"] == nil, "a sysv server names no etcd endpoints")
            let printed = try scope.client(["--port", "\(server.port)", "info"])
            #expect(printed.status == 0 && printed.out.split(separator: "\n").contains("etcd=\(endpoints)"), "\(printed)")

            let listed = try scope.client(["ls"])
            #expect(listed.status == 0, "\(listed)")
            let rows = listed.out.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(rows.first?.last == "ENDPOINTS", "\(listed)")
            let etcdRow = rows.first { $0.first == "\(server.port)" }, sysvRow = rows.first { $0.first == "\(other.port)" }
            #expect(etcdRow?[3] == "etcd" && etcdRow?.last == endpoints, "\(listed)")
            #expect(sysvRow?[3] == "sysv" && sysvRow?.last == "-", "\(listed)")

            let json = try scope.client(["--json", "ls"])
            let list = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout)) as? [[String: Any]], "\(json)")
            let entry = list.first { $0["port"] as? Int == server.port }
            #expect(entry?["backend"] as? String == "etcd" && entry?["etcd"] as? String == endpoints, "\(json)")
            #expect(list.first { $0["port"] as? Int == other.port }?["etcd"] == nil, "\(json)")
        }
    }

    /// Waits until server `s` reports `queued` requests in line.
    func waitQueued(_ s: Server, _ queued: Int) throws -> Bool {
        let c = try s.connect()
        return waitUntil(timeout: 5) { (try? keyValues(c.request("s"))["queued"]) == "\(queued)" }
    }

    @Test("a c waiting on server A is woken within 1 s by a p on server B")
    func crossServerWake() throws {
        try withCluster { cluster, scope in
            let a = try scope.start("etcd", options: etcdOptions(cluster))
            let b = try scope.start("etcd", options: etcdOptions(cluster))
            let taker = try a.connect()
            try taker.send("c 0 10000\n")
            try #require(try waitQueued(a, 1), "the c is in line on A")
            let pushedAt = monotonicNow()
            #expect(try b.connect().request("p 0 5\nhello") == "ok 1")
            #expect(try taker.readLine() == "ok 5 2")
            let woke = monotonicNow() - pushedAt
            #expect(try taker.readBytes(5) == Array("hello".utf8))
            #expect(woke < 1, "woken \(woke) s after the push")
        }
    }

    @Test("contended p and c that may not wait, from two servers: never err full with room, never err empty with a message, each message taken once")
    func contendedWithoutWaiting() throws {
        try withCluster { cluster, scope in
            let servers = [try scope.start("etcd", mailboxKB: 64, options: etcdOptions(cluster)),
                           try scope.start("etcd", mailboxKB: 64, options: etcdOptions(cluster))]
            let ports = servers.map(\.port)
            let clients = 8, each = 20
            /// Each client (half on each server) sends `each` requests, one at a time,
            /// all clients at once; returns every client's results in order.
            func contend(_ request: @escaping @Sendable (Conn, Int, Int) throws -> String) -> [String] {
                let threads = (0..<clients).map { client in
                    SpawnedThread { () -> [String] in
                        do {
                            let c = try Conn(port: ports[client % 2])
                            return try (0..<each).map { try request(c, client, $0) }
                        } catch { return ["\(error)"] }
                    }
                }
                return threads.flatMap { $0.join() }
            }
            // 64 KiB holds all 160 messages: a `p` that finds the mailbox full is wrong.
            let pushes = contend { c, client, i in
                try c.request("p 0 8\n" + "m\(client)-\(i)".padding(toLength: 8, withPad: "_", startingAt: 0))
            }
            let refusedPushes = pushes.filter { !$0.hasPrefix("ok ") }
            #expect(refusedPushes.isEmpty, "\(refusedPushes.count) of \(pushes.count) pushes refused: \(Set(refusedPushes))")
            // 160 takes of the (at most) 160 messages: while one is there, `err empty` is wrong.
            let takes = contend { c, _, _ in
                try c.send("c 0\n")
                let line = try c.readLine()
                guard line.hasPrefix("ok ") else { return line }
                let length = try #require(Int(line.split(separator: " ")[1]))
                return String(decoding: try c.readBytes(length), as: UTF8.self)
            }
            let taken = takes.filter { $0.hasPrefix("m") }
            let acknowledged = pushes.filter { $0.hasPrefix("ok ") }.count
            #expect(taken.count == acknowledged, "\(taken.count) taken of \(acknowledged) pushed; other replies: \(Set(takes.filter { !$0.hasPrefix("m") }))")
            #expect(Set(taken).count == taken.count, "a message was taken twice")
        }
    }

    @Test("a SIGKILLed server's waiting place is released: the next in line is served within 10 s")
    func deadServersPlaceReleased() throws {
        try withCluster { cluster, scope in
            let a = try scope.start("etcd", options: etcdOptions(cluster))
            let b = try scope.start("etcd", options: etcdOptions(cluster))
            let first = try a.connect()
            try first.send("c 0 60000\n")
            try #require(try waitQueued(a, 1), "A's c is in line")
            let second = try b.connect(timeout: 20)
            try second.send("c 0 30000\n")
            try #require(try waitQueued(b, 1), "B's c is in line behind A's")
            a.kill(SIGKILL)
            #expect(a.waitGone())
            let killedAt = monotonicNow()
            #expect(try b.connect().request("p 0 3\nabc") == "ok 1")
            #expect(try second.readLine() == "ok 3 2")
            #expect(try second.readBytes(3) == Array("abc".utf8))
            let served = monotonicNow() - killedAt
            #expect(served < 11, "served \(served) s after A died")
            // dipcrm after the crash revokes the lease its runtime record names.
            let removed = try scope.dipcrm(a.port)
            #expect(removed.status == 0 && removed.out.contains("revoked its etcd lease"), "\(removed)")
        }
    }

    @Test("the etcd leader SIGKILLed mid-run (3 nodes): clients continue, nothing acknowledged lost or taken twice")
    func leaderKilled() throws {
        try withCluster(nodes: 3) { cluster, scope in
            let a = try scope.start("etcd", options: etcdOptions(cluster))
            let b = try scope.start("etcd", options: etcdOptions(cluster))
            let writer = try a.connect(timeout: 40), pusher = try a.connect(timeout: 40), taker = try b.connect(timeout: 40)
            let total = 60
            var taken: [String] = []
            for i in 1...total {
                if i == total / 2 {
                    let leader = try #require(cluster.leader(), "a leader")
                    cluster.kill(node: leader)
                }
                #expect(try writer.write(0, "value \(i)") == UInt64(i))
                let message = "message \(i)"
                #expect(try pusher.request("p 1 \(message.utf8.count)\n\(message)").hasPrefix("ok "))
                let reply = try taker.request("c 1 10000")
                let length = try #require(Int(reply.split(separator: " ").dropFirst().first ?? ""), "\(reply)")
                taken.append(String(decoding: try taker.readBytes(length), as: UTF8.self))
            }
            #expect(taken == (1...total).map { "message \($0)" })
            let last = try b.connect().read(0)
            #expect(last.data == Array("value \(total)".utf8) && last.version == UInt64(total))
            #expect(try taker.request("c 1") .hasPrefix("err empty"))
        }
    }

    @Test("a server cut off from etcd answers err unavailable within --io-timeout, and serves again once healed")
    func partition() throws {
        try withCluster { cluster, scope in
            let relay = try TCPRelay(to: cluster.clientPort(0))
            defer { relay.stop() }
            let s = try scope.start("etcd", options: ["--etcd", "http://127.0.0.1:\(relay.port)", "--io-timeout", "3"])
            let c = try s.connect(timeout: 20)
            #expect(try c.write(0, "before") == 1)
            relay.cut()
            let began = monotonicNow()
            let reply = try c.request("r 0")
            let took = monotonicNow() - began
            #expect(reply.hasPrefix("err unavailable "), "\(reply)")
            #expect(took < 4.5, "answered after \(took) s with --io-timeout 3")
            let write = try c.request("w 0 5\nlater")
            #expect(write.hasPrefix("err unavailable ") && !write.contains("outcome unknown"), "\(write)")
            try relay.heal()
            var healed: String = ""
            #expect(waitUntil(timeout: 15, interval: 0.2) {
                healed = (try? c.request("r 0")) ?? ""
                return healed.hasPrefix("ok ")
            }, "last reply \(healed)")
            #expect(healed == "ok 6 1")
            #expect(try c.readBytes(6) == Array("before".utf8))
        }
    }
}
