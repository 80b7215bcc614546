import DIPCTestSupport
import Foundation
import Testing

/// Many clients at once: values are never torn, versions never go back, no update is lost.
@Suite("concurrency")
struct ConcurrencyTests {
    struct Outcome {
        var problems: [String] = []
        var writesPerMailbox = [Int](repeating: 0, count: 4)
        var reads = 0
    }

    /// 8 writers and 8 readers on 4 mailboxes for about `seconds` (bounded op count), spread over `ports`.
    static func hammer(ports: [Int], seconds: Double) -> Outcome {
        let result = Locked(Outcome())
        let deadline = monotonicNow() + seconds
        let maxOps = 3000
        let finished = runThreads(16, timeout: seconds + 60) { i in
            let port = ports[i % ports.count]
            var g = SplitMix64()
            var problems: [String] = []
            var writes = [Int](repeating: 0, count: 4)
            var reads = 0
            do {
                let c = try Conn(port: port, timeout: 10)
                if i < 8 {  // writer
                    var lastVersion = [UInt64](repeating: 0, count: 4)
                    for op in 0..<maxOps where monotonicNow() < deadline {
                        let m = (i + op) % 4
                        let v = CheckedValue.make(length: Int.random(in: 8...4096, using: &g), using: &g)
                        let ver = try c.write(m, v)
                        if ver <= lastVersion[m] {
                            problems.append("writer \(i): mailbox \(m) version \(ver) after \(lastVersion[m])")
                        }
                        lastVersion[m] = ver
                        writes[m] += 1
                    }
                } else {  // reader
                    var lastVersion = [UInt64](repeating: 0, count: 4)
                    for op in 0..<maxOps where monotonicNow() < deadline {
                        let m = (i * 7 + op) % 4
                        let (d, ver) = try c.read(m)
                        reads += 1
                        if ver < lastVersion[m] {
                            problems.append("reader \(i): mailbox \(m) version went back \(lastVersion[m]) -> \(ver)")
                        }
                        lastVersion[m] = ver
                        if d.isEmpty {
                            if ver != 0 { problems.append("reader \(i): mailbox \(m) empty at version \(ver)") }
                        } else if let p = CheckedValue.problem(d) {
                            problems.append("reader \(i): mailbox \(m) v\(ver) TORN: \(p)")
                        }
                        if problems.count > 5 { break }
                    }
                }
            } catch {
                problems.append("client \(i) on port \(port): \(error)")
            }
            result.withValue { o in
                o.problems += problems
                o.reads += reads
                for m in 0..<4 { o.writesPerMailbox[m] += writes[m] }
            }
        }
        if !finished { result.withValue { $0.problems.append("clients did not finish within \(seconds + 60) s") } }
        return result.get
    }

    static func check(_ o: Outcome, finalVersions: [UInt64]) {
        #expect(o.problems.isEmpty, "\(o.problems.prefix(10))")
        #expect(o.reads > 0 && o.writesPerMailbox.allSatisfy { $0 > 0 }, "no traffic: \(o)")
        // Every acknowledged write counted exactly once.
        for m in 0..<4 {
            #expect(finalVersions[m] == UInt64(o.writesPerMailbox[m]), "mailbox \(m): version \(finalVersions[m]) but \(o.writesPerMailbox[m]) acknowledged writes")
        }
    }

    @Test("8 writers + 8 readers, one server: no torn value, versions monotonic, no lost write", arguments: E2E.builtBackends)
    func oneServer(backend: String) throws {
        try withServer(backend) { server, _ in
            let o = Self.hammer(ports: [server.port], seconds: 2)
            let c = try server.connect()
            let finals = try (0..<4).map { m -> UInt64 in
                let (d, v) = try c.read(m)
                #expect(CheckedValue.problem(d) == nil, "final value of mailbox \(m)")
                return v
            }
            Self.check(o, finalVersions: finals)
        }
    }

    @Test("the same load spread over two servers sharing the store", arguments: E2E.builtBackends)
    func twoServers(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            let b = try scope.start(backend)
            let o = Self.hammer(ports: [a.port, b.port], seconds: 2)
            let c = try b.connect()
            let finals = try (0..<4).map { try c.read($0).version }
            Self.check(o, finalVersions: finals)
        }
    }

    @Test("phase-fair coordinator under the same load", arguments: E2E.builtBackends)
    func phaseFair(backend: String) throws {
        try withServer(backend, options: ["--coordinator", "phase-fair"]) { server, _ in
            #expect(keyValues(try server.info().line)["coordinator"] == "phase-fair")
            let o = Self.hammer(ports: [server.port], seconds: 1.5)
            let c = try server.connect()
            let finals = try (0..<4).map { try c.read($0).version }
            Self.check(o, finalVersions: finals)
        }
    }

    @Test("a reader is not starved by a stream of writers", arguments: E2E.builtBackends)
    func readerNotStarved(backend: String) throws {
        try withServer(backend) { server, _ in
            let stop = Locked(false)
            let port = server.port
            let done = DispatchGroup()
            for _ in 0..<6 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    guard let c = try? Conn(port: port) else { return }
                    let v = [UInt8](repeating: 7, count: 4096)
                    while !stop.get { if (try? c.write(0, v)) == nil { return } }
                }.start()
            }
            defer {
                stop.withValue { $0 = true }
                _ = done.wait(timeout: .now() + 10)
            }
            let c = try server.connect()
            var worst = 0.0
            for _ in 0..<50 {
                let t = monotonicNow()
                _ = try c.read(0)
                worst = max(worst, monotonicNow() - t)
            }
            #expect(worst < 2, "a read took \(worst) s under 6 writers")
        }
    }

    @Test("no lock across network I/O: a client that does not read its replies blocks nobody", arguments: E2E.builtBackends)
    func stalledReaderBlocksNobody(backend: String) throws {
        try withServer(backend, mailboxes: 2, mailboxKB: 1024, packetKB: 64) { server, _ in
            let c = try server.connect()
            try c.write(0, randomBytes(1024 * 1024))
            // 32 pipelined reads of 1 MiB that this client never reads: the server blocks sending.
            let stalled = try server.connect()
            try stalled.send(Array(String(repeating: "r 0\n", count: 32).utf8))
            usleep(300_000)  // not a synchronisation: lets the server fill the socket buffers first
            let t = monotonicNow()
            let other = try server.connect(timeout: 5)
            let v = try other.write(0, "small")
            let (d, v2) = try other.read(0)
            let took = monotonicNow() - t
            #expect(d == Array("small".utf8) && v2 == v, "read after write")
            #expect(took < 2, "write + read of mailbox 0 took \(took) s while another client stalls reading it")
        }
    }

    @Test("no lock across network I/O: a writer stalled mid-data blocks nobody", arguments: E2E.builtBackends)
    func stalledWriterBlocksNobody(backend: String) throws {
        try withServer(backend, mailboxes: 2, mailboxKB: 1024, packetKB: 64) { server, _ in
            let stalled = try server.connect()
            try stalled.send(Array("w 0 1048576\n".utf8) + randomBytes(500_000))
            #expect(stalled.staysSilent(for: 0.2), "answered a write whose data is incomplete")
            let t = monotonicNow()
            let other = try server.connect(timeout: 5)
            #expect(try other.request("r 0") == "ok 0 0", "read while a write's data is still arriving")
            #expect(try other.write(0, "x") == 1)
            #expect(monotonicNow() - t < 2)
            try stalled.send(randomBytes(1_048_576 - 500_000))
            #expect(try stalled.readLine() == "ok 2", "the stalled write, completed, is ordered after the other")
        }
    }

    @Test("a writer is not starved by a stream of readers", arguments: E2E.builtBackends)
    func writerNotStarved(backend: String) throws {
        try withServer(backend) { server, _ in
            let seed = try server.connect()
            try seed.write(0, [UInt8](repeating: 1, count: 4096))
            let stop = Locked(false)
            let port = server.port
            let done = DispatchGroup()
            for _ in 0..<8 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    guard let c = try? Conn(port: port) else { return }
                    // Keep several reads queued at all times.
                    while !stop.get {
                        if (try? c.send(Array("r 0\nr 0\nr 0\nr 0\n".utf8))) == nil { return }
                        for _ in 0..<4 { if (try? c.readDataReply(request: "r 0")) == nil { return } }
                    }
                }.start()
            }
            defer {
                stop.withValue { $0 = true }
                _ = done.wait(timeout: .now() + 10)
            }
            usleep(200_000)  // not a synchronisation: lets the readers get going
            let c = try server.connect()
            var worst = 0.0
            for i in 0..<30 {
                let t = monotonicNow()
                try c.write(0, [UInt8](repeating: UInt8(i), count: 4096))
                worst = max(worst, monotonicNow() - t)
            }
            #expect(worst < 2, "a write took \(worst) s under 8 greedy readers")
        }
    }
}
