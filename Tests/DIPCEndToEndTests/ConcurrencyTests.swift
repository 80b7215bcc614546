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
        /// Requests each client completed (writers: writes, readers: reads).
        var operationsPerClient = [Int](repeating: 0, count: ConcurrencyTests.clients)
        /// Monotonic times at which each client did its first and its last request.
        var activeFrom = [Double](repeating: .infinity, count: ConcurrencyTests.clients)
        var activeUntil = [Double](repeating: -.infinity, count: ConcurrencyTests.clients)
    }

    /// Clients in `hammer`: the first half write, the others read.
    static let clients = 16
    /// Requests every client completes, however slow the machine, so that the load is real.
    static let minimumOperations = 20

    /// 8 writers and 8 readers on 4 mailboxes for about `seconds` (bounded op count), spread over `ports`.
    /// All clients connect first and start together; each does at least `minimumOperations`.
    static func hammer(ports: [Int], seconds: Double) -> Outcome {
        let result = Locked(Outcome())
        let startLine = StartLine(count: clients)
        let maxOps = 3000
        let finished = runThreads(clients, timeout: seconds + 60) { i in
            let port = ports[i % ports.count]
            var g = SplitMix64()
            var problems: [String] = []
            var writes = [Int](repeating: 0, count: 4)
            var reads = 0
            var operations = 0
            var from = Double.infinity
            var until = -Double.infinity
            do {
                let c: Conn
                do {
                    c = try Conn(port: port, timeout: 10)
                } catch {
                    _ = startLine.arriveAndWait(timeout: 0)  // the others need not wait for this one
                    throw error
                }
                guard let start = startLine.arriveAndWait(timeout: 30) else {
                    throw E2EError("the \(clients) clients were not all connected within 30 s")
                }
                let deadline = start + seconds
                func goOn() -> Bool {
                    operations < maxOps && (operations < minimumOperations || monotonicNow() < deadline)
                }
                if i < clients / 2 {  // writer
                    var lastVersion = [UInt64](repeating: 0, count: 4)
                    while goOn() {
                        let m = (i + operations) % 4
                        let v = CheckedValue.make(length: Int.random(in: 8...4096, using: &g), using: &g)
                        from = min(from, monotonicNow())
                        let ver = try c.write(m, v)
                        until = monotonicNow()
                        operations += 1
                        if ver <= lastVersion[m] {
                            problems.append("writer \(i): mailbox \(m) version \(ver) after \(lastVersion[m])")
                        }
                        lastVersion[m] = ver
                        writes[m] += 1
                    }
                } else {  // reader
                    var lastVersion = [UInt64](repeating: 0, count: 4)
                    while goOn() {
                        let m = (i * 7 + operations) % 4
                        from = min(from, monotonicNow())
                        let (d, ver) = try c.read(m)
                        until = monotonicNow()
                        operations += 1
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
                o.operationsPerClient[i] = operations
                o.activeFrom[i] = from
                o.activeUntil[i] = until
            }
        }
        if !finished { result.withValue { $0.problems.append("clients did not finish within \(seconds + 60) s") } }
        return result.get
    }

    static func check(_ o: Outcome, finalVersions: [UInt64]) {
        #expect(o.problems.isEmpty, "\(o.problems.prefix(10))")
        #expect(o.reads > 0 && o.writesPerMailbox.allSatisfy { $0 > 0 }, "no traffic: \(o)")
        // The load was real: every client did its share. (The clients start together from
        // one start line; whether their windows overlap is up to the scheduler — under
        // ThreadSanitizer on a loaded machine one can finish before the last begins — so
        // it is not asserted.)
        #expect(o.operationsPerClient.allSatisfy { $0 >= minimumOperations },
                "requests per client \(o.operationsPerClient), expected at least \(minimumOperations) each")
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

    /// Operations every load thread must complete before a measurement starts: the load is running.
    static let warmUpOperations = 5

    /// Times `operation` at least `repetitions` times and then on until every thread of
    /// `load` has completed an operation since the first one started (so that each measured
    /// operation competed with a running load), for at most `deadline` seconds; returns the
    /// slowest time. Records an issue when a load thread failed or made no progress by then.
    static func worstTime(of operation: (Int) throws -> Void, repetitions: Int, under load: LoadThreads,
                          deadline: Double = 20, sourceLocation: SourceLocation = #_sourceLocation) throws -> Double {
        let before = load.completed
        let end = monotonicNow() + deadline
        var worst = 0.0
        var done = 0
        func everyThreadProgressed() -> Bool { zip(load.completed, before).allSatisfy { $0 > $1 } }
        while done < repetitions || (!everyThreadProgressed() && monotonicNow() < end) {
            let t = monotonicNow()
            try operation(done)
            worst = max(worst, monotonicNow() - t)
            done += 1
        }
        #expect(load.connectFailures.isEmpty && load.operationErrors.isEmpty,
                "load threads failed: \(load.connectFailures + load.operationErrors)", sourceLocation: sourceLocation)
        #expect(everyThreadProgressed(),
                "operations per load thread during \(done) measured ones: \(zip(load.completed, before).map { $0 - $1 })",
                sourceLocation: sourceLocation)
        return worst
    }

    @Test("a reader is not starved by a stream of writers", arguments: E2E.builtBackends)
    func readerNotStarved(backend: String) throws {
        try withServer(backend) { server, _ in
            let port = server.port
            let v = [UInt8](repeating: 7, count: 4096)
            let writers = LoadThreads(count: 6, port: { _ in port }) { _, c in _ = try c.write(0, v) }
            defer { #expect(writers.stop(), "the writers did not stop within 10 s") }
            try #require(writers.waitUntilEach(completed: Self.warmUpOperations, timeout: 30),
                         "writers not all running: \(writers.completed) \(writers.connectFailures + writers.operationErrors)")
            let c = try server.connect()
            let worst = try Self.worstTime(of: { _ in _ = try c.read(0) }, repetitions: 50, under: writers)
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
            // The server is held up sending to it once its end of the connection keeps data
            // queued that the stalled client's full receive buffer cannot take.
            try #require(
                waitUntil(timeout: 10) { (serverSendQueue(of: stalled) ?? 0) > 0 },
                "the server never filled the stalled client's receive buffer (send queue \(String(describing: serverSendQueue(of: stalled))))")
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
            let port = server.port
            // Each operation keeps several reads queued: four pipelined, then their replies.
            let readers = LoadThreads(count: 8, port: { _ in port }) { _, c in
                try c.send(Array("r 0\nr 0\nr 0\nr 0\n".utf8))
                for _ in 0..<4 { _ = try c.readDataReply(request: "r 0") }
            }
            defer { #expect(readers.stop(), "the readers did not stop within 10 s") }
            try #require(readers.waitUntilEach(completed: Self.warmUpOperations, timeout: 30),
                         "readers not all running: \(readers.completed) \(readers.connectFailures + readers.operationErrors)")
            let c = try server.connect()
            let worst = try Self.worstTime(
                of: { i in try c.write(0, [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 4096)) },
                repetitions: 30, under: readers)
            #expect(worst < 2, "a write took \(worst) s under 8 greedy readers")
        }
    }
}
