import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `dipc --metrics ADDR:PORT`: the Prometheus page on the real binary.
@Suite("metrics")
struct MetricsTests {
    /// A server with `--metrics 127.0.0.1:PORT`, and that port.
    private func startWithMetrics(_ scope: Scope, options: [String] = []) throws -> (Server, Int) {
        let metricsPort = try freePort()
        let server = try scope.start(E2E.builtBackends[0], options: ["--metrics", "127.0.0.1:\(metricsPort)"] + options)
        return (server, metricsPort)
    }

    private func scrape(_ port: Int) throws -> [String: Double] {
        let response = try httpRequest(port: port)
        try #require(response.status == 200, "\(response)")
        return metricSamples(response.body)
    }

    @Test("after a known workload every counter and histogram count is exact")
    func exactCountsAfterAKnownWorkload() throws {
        try withScope { scope in
            let (server, metricsPort) = try startWithMetrics(scope)
            let c = try server.connect()
            var sent = 0
            var received = 0
            func ask(_ request: String, _ expected: String) throws {
                try c.send(request)
                sent += request.utf8.count
                let line = try c.readLine()
                received += line.utf8.count + 1
                #expect(line == expected, "\(request.debugDescription)")
            }
            for n in 1...3 { try ask("w 0 5\nhello", "ok \(n)") }
            for _ in 1...2 {
                try ask("r 0\n", "ok 5 3")
                #expect(try c.readBytes(5) == Array("hello".utf8))
                received += 5
            }
            try ask("p 1 3\nabc", "ok 1")
            try ask("p 1 3\ndef", "ok 2")
            for expected in ["ok 3 3", "ok 3 4"] {
                try ask("c 1\n", expected)
                _ = try c.readBytes(3)
                received += 3
            }
            try ask("c 1\n", "err empty mailbox 1 has no message")
            try ask("r 9\n", "err range mailbox 9 is not in 0..3")
            try ask("x\n", "err syntax unknown request \"x\"")
            try ask("q\n", "bye")
            #expect(c.waitForClose() == .closed)

            // The connection's end is counted once its thread has finished with it.
            var samples: [String: Double] = [:]
            #expect(waitUntil(timeout: 10) {
                samples = (try? scrape(metricsPort)) ?? [:]
                return samples["dipc_connections"] == 0
            }, "\(samples)")
            let requests: [String: Double] = ["write": 3, "read": 2, "push": 2, "take": 3, "quit": 1,
                                              "watch": 0, "info": 0, "stats": 0, "authenticate": 0]
            for (kind, count) in requests {
                #expect(samples["dipc_requests_total{kind=\"\(kind)\"}"] == count, "requests of kind \(kind)")
                #expect(samples["dipc_request_duration_seconds_count{kind=\"\(kind)\"}"] == count, "latencies of kind \(kind)")
                #expect(samples["dipc_request_duration_seconds_bucket{kind=\"\(kind)\",le=\"+Inf\"}"] == count)
            }
            // A read on loopback never takes 10 s; each finished within the last finite bucket.
            #expect(samples["dipc_request_duration_seconds_bucket{kind=\"write\",le=\"10.0\"}"] == 3)
            #expect(samples["dipc_errors_total{code=\"empty\"}"] == 1)
            #expect(samples["dipc_errors_total{code=\"syntax\"}"] == 1)
            #expect(samples["dipc_errors_total{code=\"range\"}"] == 1)
            #expect(samples["dipc_errors_total{code=\"full\"}"] == 0)
            #expect(samples["dipc_connections_accepted_total"] == 1)
            #expect(samples["dipc_connections_rejected_total"] == 0)
            #expect(samples["dipc_received_bytes_total"] == Double(sent))
            #expect(samples["dipc_sent_bytes_total"] == Double(received))
            #expect(samples["dipc_staging_bytes"] == 0)
            #expect(samples["dipc_staging_capacity_bytes"] == Double(256 << 20))
            for kind in ["watch", "push", "take"] {
                #expect(samples["dipc_waiting_requests{kind=\"\(kind)\"}"] == 0)
            }
            // SPEC §3 Resources: the endpoint's thread is within --max-clients (256) + 32.
            let threads = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(server.pid)/task").count) ?? 0
            #expect(threads > 0 && threads <= 256 + 32, "\(threads) threads")
        }
    }

    @Test("a waiting take shows in dipc_waiting_requests until a push wakes it")
    func waitingClientsGauge() throws {
        try withScope { scope in
            let (server, metricsPort) = try startWithMetrics(scope)
            let waiter = try server.connect()
            try waiter.send("c 2 20000\n")
            // A page is not one instant: the connection count is read before the waiting
            // gauges, so one scrape may see the take waiting but not yet its connection.
            var samples: [String: Double] = [:]
            #expect(waitUntil(timeout: 10) {
                samples = (try? scrape(metricsPort)) ?? [:]
                return samples["dipc_waiting_requests{kind=\"take\"}"] == 1 && samples["dipc_connections"] == 1
            }, "\(samples.filter { $0.key.hasPrefix("dipc_conn") || $0.key.hasPrefix("dipc_wait") })")
            #expect(try server.connect().request("p 2 2\nhi") == "ok 1")
            #expect(try waiter.readLine() == "ok 2 2")
            samples = try scrape(metricsPort)
            #expect(samples["dipc_waiting_requests{kind=\"take\"}"] == 0)
            #expect(samples["dipc_requests_total{kind=\"take\"}"] == 1)
        }
    }

    @Test("tdb: each committed transaction is timed", .requires(.tdbBackend))
    func tdbTransactions() throws {
        try withScope { scope in
            let metricsPort = try freePort()
            let server = try scope.start("tdb", options: ["--metrics", "127.0.0.1:\(metricsPort)"])
            let c = try server.connect()
            #expect(try c.request("w 0 1\nx") == "ok 1")  // the series exists from the first commit on
            let before = try #require(try scrape(metricsPort)["dipc_tdb_transaction_seconds_count"])
            for n in 2...6 { #expect(try c.request("w 0 1\nx") == "ok \(n)") }
            #expect(try c.request("p 1 1\ny") == "ok 1")
            #expect(try c.request("r 0") == "ok 1 6")
            _ = try c.readBytes(1)
            let after = try scrape(metricsPort)["dipc_tdb_transaction_seconds_count"]
            #expect(after == before + 6, "5 writes and a push commit 6 transactions; a read commits none")
        }
    }

    @Test("etcd: each round trip is timed by call", .requires(.etcd))
    func etcdRoundTrips() throws {
        try withScope { scope in
            let metricsPort = try freePort()
            let server = try scope.start("etcd", options: ["--metrics", "127.0.0.1:\(metricsPort)"])
            let c = try server.connect(timeout: 20)
            #expect(try c.request("w 0 1\nx") == "ok 1")
            let range = "dipc_etcd_round_trip_seconds_count{call=\"/v3/kv/range\"}"
            let txn = "dipc_etcd_round_trip_seconds_count{call=\"/v3/kv/txn\"}"
            let before = try scrape(metricsPort)
            let reads = try #require(before[range]), txns = try #require(before[txn])
            for _ in 1...3 {
                #expect(try c.request("r 0").hasPrefix("ok 1 "))
                _ = try c.readBytes(1)
            }
            #expect(try c.request("w 0 1\ny") == "ok 2")
            let after = try scrape(metricsPort)
            // Other round trips (the lease's keepalive, the watch) are not ranges or txns.
            #expect(after[range] == reads + 3, "one range per r")
            #expect(after[txn] == txns + 1, "one txn per w")
            #expect(after["dipc_etcd_retries_total"] ?? 0 == 0, "no retry against a healthy node")
        }
    }

    @Test("a read that waits for a held write lock is one coordinator wait")
    func coordinatorWait() throws {
        try withScope { scope in
            let hold = scope.dir + "/hold-write-lock"
            let metricsPort = try freePort()
            let server = try scope.start(E2E.builtBackends[0], options: ["--metrics", "127.0.0.1:\(metricsPort)"],
                                         extraEnv: ["DIPC_TEST_HOLD": "write-lock:0:\(hold)"])
            var samples = try scrape(metricsPort)
            #expect(samples["dipc_coordinator_wait_seconds_count{lock=\"read\"}"] == 0)
            let writer = try server.connect()
            try writer.send("w 0 1\nx")
            // Debug builds only: a release build has no hold points and never announces.
            try #require(waitUntil(timeout: 10) { IPC.exists(hold) }, "the write never paused holding its lock (a release build?)")
            let reader = try server.connect()
            try reader.send("r 0\n")
            // The reader's thread sleeps on the mailbox's futex once it is queued.
            try #require(waitUntil(timeout: 10) { threadsWaitingOnAFutex(server.pid) == 1 }, "the read never queued")
            unlink(hold)
            #expect(try writer.readLine() == "ok 1")
            #expect(try reader.readLine() == "ok 1 1")
            samples = try scrape(metricsPort)
            #expect(samples["dipc_coordinator_wait_seconds_count{lock=\"read\"}"] == 1)
            #expect(samples["dipc_coordinator_wait_seconds_count{lock=\"write\"}"] == 0)
            #expect(samples["dipc_request_duration_seconds_count{kind=\"read\"}"] == 1)
        }
    }

    /// Threads of `pid` asleep in a futex wait (the kernel's wait channel says so).
    private func threadsWaitingOnAFutex(_ pid: pid_t) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.filter { procFile("/proc/\(pid)/task/\($0)/wchan")?.contains("futex") == true }.count
    }

    @Test("the page parses with prometheus_client's strict text-format parser")
    func strictTextFormat() throws {
        if let missing = PrometheusParser.unavailable {
            Issue.record("cannot check the text format: \(missing)")
            return
        }
        try withScope { scope in
            let (server, metricsPort) = try startWithMetrics(scope)
            #expect(try server.connect().request("w 0 1\nx") == "ok 1")
            let response = try httpRequest(port: metricsPort)
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(response.headers["content-length"] == String(response.body.utf8.count))
            let families = try PrometheusParser.families(of: response.body)
            #expect(families.contains("dipc_requests counter 9"), "\(families)")
            #expect(families.contains("dipc_request_duration_seconds histogram \(9 * (ServerBuckets.count + 3))"), "\(families)")
            // One series per SPEC §2 error code: syntax, range, size, busy, timeout,
            // shutdown, full, empty, internal, auth, unavailable.
            #expect(families.contains("dipc_errors counter 11"), "\(families)")
            #expect(families.contains("dipc_connections gauge 1"), "\(families)")
            #expect(families.contains("dipc_waiting_requests gauge 3"), "\(families)")
        }
    }

    @Test("other paths answer 404, other methods 405, HEAD has no body")
    func otherPathsAndMethods() throws {
        try withScope { scope in
            let (_, metricsPort) = try startWithMetrics(scope)
            for path in ["/", "/metric", "/metrics/x", "/favicon.ico"] {
                #expect(try httpRequest(port: metricsPort, path: path).status == 404, "\(path)")
            }
            #expect(try httpRequest(port: metricsPort, path: "/metrics?x=1").status == 200)
            let post = try httpRequest(port: metricsPort, method: "POST")
            #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")
            let head = try httpRequest(port: metricsPort, method: "HEAD")
            #expect(head.status == 200 && head.body.isEmpty && Int(head.headers["content-length"] ?? "") ?? 0 > 0)
            // A request head that never ends is cut off at 8 KiB.
            let flood = try Conn(port: metricsPort)
            try flood.send("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 16384))
            #expect(try flood.readLine() == "HTTP/1.1 431 Request Header Fields Too Large\r")
        }
    }

    @Test("a --metrics address beyond loopback needs authentication or --insecure, like --bind")
    func protectedMode() throws {
        try withScope { scope in
            let port = try freePort()
            let metricsPort = try freePort()
            let r = try scope.dipc(Scope.arguments(
                backend: E2E.builtBackends[0], name: scope.name, options: ["--metrics", "0.0.0.0:\(metricsPort)"],
                mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(r.err == "dipc: --metrics 0.0.0.0:\(metricsPort): refusing to serve 0.0.0.0 without authentication: give --auth-file or --tls-ca, or --insecure\n", "\(r)")
            #expect(!portAccepts(port) && !portAccepts(metricsPort))

            let server = try scope.start(E2E.builtBackends[0], options: ["--metrics", "0.0.0.0:\(metricsPort)", "--insecure"])
            #expect(try httpRequest(port: metricsPort).status == 200)
            #expect(server.isAlive)
        }
    }

    @Test("a malformed --metrics is a usage error", arguments: ["9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9464", ":9464"])
    func malformedAddress(_ value: String) throws {
        try withScope { scope in
            let r = try scope.dipc(["--metrics", value, "4", "4", "\(try freePort())", "1"])
            #expect(r.status == 2)
            #expect(r.err.hasPrefix("dipc: --metrics must be ADDR:PORT"), "\(r)")
        }
    }

    @Test("the metrics port is closed once dipcrm has stopped the server")
    func closedAfterDipcrm() throws {
        try withScope { scope in
            let (server, metricsPort) = try startWithMetrics(scope)
            #expect(try httpRequest(port: metricsPort).status == 200)
            let r = try scope.dipcrm(server.port)
            #expect(r.status == 0, "\(r)")
            #expect(server.waitGone())
            #expect(!portAccepts(metricsPort))
        }
    }

    @Test("every metric the Grafana dashboard queries is one the server exports")
    func dashboardQueriesExportedMetrics() throws {
        let path = repositoryRoot + "/Examples/monitoring/grafana-dashboard.json"
        let data = try #require(FileManager.default.contents(atPath: path), "cannot read \(path)")
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        var queries: [String] = []
        func collect(_ value: Any) {
            if let object = value as? [String: Any] {
                for (key, inner) in object {
                    if key == "expr" || key == "definition", let query = inner as? String { queries.append(query) }
                    collect(inner)
                }
            } else if let array = value as? [Any] {
                array.forEach(collect)
            }
        }
        collect(dashboard)
        let pattern = try NSRegularExpression(pattern: "\\bdipc_[a-z_]+")
        let queried = Set(queries.flatMap { query in
            pattern.matches(in: query, range: NSRange(query.startIndex..., in: query)).map {
                String(query[Range($0.range, in: query)!])
            }
        })
        try #require(queried.count >= 8, "the dashboard queries too few metrics: \(queried.sorted())")
        try withScope { scope in
            let (_, metricsPort) = try startWithMetrics(scope)
            let exported = Set(try scrape(metricsPort).keys.map { String($0.prefix { $0 != "{" }) })
            #expect(queried.subtracting(exported).isEmpty, "queried but not exported: \(queried.subtracting(exported).sorted())")
        }
    }
}

/// The server's latency buckets (finite ones), as the page lists them.
private enum ServerBuckets {
    static let count = 19
}
