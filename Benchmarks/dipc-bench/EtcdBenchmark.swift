@preconcurrency import Glibc
import ArgumentParser
import DIPCCore
import DIPCEtcd
import DIPCTestSupport
import Foundation

/// `dipc-bench etcd --bin DIR`: dipc on `--backend etcd` against etcd itself, at the same
/// concurrency and value size (issue 14's "Measured"): what dipc adds to etcd's latency,
/// and how `r` compares with etcd's linearizable read throughput.
struct EtcdBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "etcd",
        abstract: "dipc on --backend etcd against etcd itself: ops/s, p50 and p99 at 1/16/64 connections, 64 B and 4 KiB.",
        discussion: """
            Starts a private single-node etcd (data under /dev/shm, killed at the end) and one DIR/dipc \
            --backend etcd on it (16 mailboxes of 64 KiB). For each connection count and value size, a closed \
            loop of reads (`r K` against etcd's linearizable `/v3/kv/range`) and one of writes (`w K LEN` \
            against `/v3/kv/put`) on 16 keys; etcd is driven through the same libcurl gateway client the \
            backend uses (one per connection). Each run: 1 s warm-up, then --seconds measured.
            """)

    @Option(help: "Directory holding the dipc and dipcrm executables.") var bin: String
    @Option(help: "Measured seconds per run.") var seconds: Double = 3
    @Option(help: "Comma-separated connection counts.") var connections: String = "1,16,64"
    @Option(help: "Comma-separated value sizes in bytes.") var sizes: String = "64,4096"

    static let keys = 16

    func validate() throws {
        guard seconds > 0 && seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        for tool in ["dipc", "dipcrm"] where access("\(bin)/\(tool)", X_OK) != 0 {
            throw ValidationError("\(bin)/\(tool) is not an executable (build with `swift build -c release`)")
        }
        guard EtcdCluster.isInstalled else { throw ValidationError("etcd is not installed (make deps installs etcd-server)") }
    }

    func run() throws {
        Interruption.install()
        let counts = connections.split(separator: ",").compactMap { Int($0) }
        let valueSizes = sizes.split(separator: ",").compactMap { Int($0) }
        let cluster = try EtcdCluster(nodes: 1)
        defer { cluster.stop() }
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-etcd")
        defer { scratch.remove() }
        let server = try DipcServer(bin: bin, scratch: scratch.path, backend: "etcd",
                                    options: ["--etcd", cluster.endpoint(0)], label: "etcd")
        defer { server.stop() }
        print("## dipc-bench etcd")
        print()
        print("Machine: \(Machine.describe())")
        print("Workload: closed loop, \(Self.keys) keys chosen at random, 1 s warm-up then \(seconds) s measured per run; "
              + "etcd = its v3 gateway through libcurl (linearizable range / put), dipc = `r` / `w` on --backend etcd.")
        print()
        var rows: [[String]] = []
        for count in counts {
            for size in valueSizes {
                for isRead in [true, false] where !Interruption.requested {
                    let direct = try Self.measureEtcd(endpoint: cluster.endpoint(0), connections: count, valueSize: size,
                                                      reads: isRead, seconds: seconds)
                    let dipc = try LoadGenerator.run(LoadSpec(
                        proto: .dipc, port: server.port, connections: count, valueSize: size, readRatio: isRead ? 1 : 0,
                        keys: Self.keys, warmupSeconds: 1, seconds: seconds, verify: false, serverPID: server.pid))
                    let etcdP50 = direct.latencies.quantileMicroseconds(0.5) ?? 0
                    let ratio = direct.opsPerSecond > 0 ? dipc.opsPerSecond / direct.opsPerSecond : 0
                    let added = etcdP50 > 0 ? (dipc.p50Microseconds - etcdP50) / etcdP50 * 100 : 0
                    rows.append([
                        String(count), sizeLabel(size), isRead ? "r / range" : "w / put",
                        grouped(direct.opsPerSecond), grouped(dipc.opsPerSecond), String(format1: ratio, digits: 2),
                        micros(etcdP50), micros(dipc.p50Microseconds),
                        micros(direct.latencies.quantileMicroseconds(0.99)), micros(dipc.p99Microseconds),
                        (added >= 0 ? "+" : "") + String(format1: added, digits: 0) + " %",
                    ])
                }
            }
        }
        printTable(["conns", "value", "op", "etcd ops/s", "dipc ops/s", "dipc/etcd", "etcd p50 µs", "dipc p50 µs",
                    "etcd p99 µs", "dipc p99 µs", "p50 added"], rows, rightAligned: Set(3...10))
        if Interruption.requested { throw BenchError("interrupted; the table is incomplete") }
    }

    /// What a direct etcd run measured.
    struct DirectResult {
        var latencies: Latencies
        var seconds: Double
        var opsPerSecond: Double { Double(latencies.count) / seconds }
    }

    /// `connections` threads, each with its own gateway client, doing linearizable ranges
    /// (or puts) of `valueSize` bytes on random keys; only requests completed inside the
    /// measured window count.
    static func measureEtcd(endpoint: String, connections: Int, valueSize: Int, reads: Bool,
                            seconds: Double) throws -> DirectResult {
        let value = Data(repeating: 0x61, count: valueSize).base64EncodedString()
        let keys = (0..<Self.keys).map { Data("bench/\($0)".utf8).base64EncodedString() }
        // Every key holds a value, so that a range returns one.
        let setup = EtcdClient(endpoints: [endpoint])
        for key in keys {
            _ = try setup.call("/v3/kv/put", ["key": key, "value": value], deadline: monotonicSeconds() + 10, idempotent: true)
        }
        let gate = StartGate(parties: connections, seconds: 1)
        let results = TestThreads.collect(connections) { index -> Result<Latencies, Error> in
            let client = EtcdClient(endpoints: [endpoint])
            var latencies = Latencies(reserving: 100_000)
            var random = FastRandom(seed: UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15)
            let windowStart = UInt64(gate.arriveAndWait() * 1e9)
            let windowEnd = windowStart + UInt64(seconds * 1e9)
            do {
                while !Interruption.requested {
                    let key = keys[random.below(keys.count)]
                    let begin = nowNanoseconds()
                    if begin >= windowEnd { break }
                    if reads {
                        let reply = try client.call("/v3/kv/range", ["key": key], deadline: monotonicSeconds() + 10, idempotent: true)
                        guard let kvs = reply["kvs"] as? [[String: Any]], let stored = kvs.first?["value"] as? String,
                              stored.count == value.count
                        else { throw BenchError("etcd range of \(key): unexpected reply \(reply)") }
                    } else {
                        _ = try client.call("/v3/kv/put", ["key": key, "value": value], deadline: monotonicSeconds() + 10,
                                            idempotent: false)
                    }
                    let end = nowNanoseconds()
                    if end >= windowStart && end < windowEnd { latencies.add(end - begin) }
                }
                return .success(latencies)
            } catch {
                return .failure(error)
            }
        }
        var all = Latencies()
        for result in results { all.merge(try result.get()) }
        return DirectResult(latencies: all, seconds: seconds)
    }
}
