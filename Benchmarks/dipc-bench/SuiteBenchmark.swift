@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench suite --bin DIR --out DIR [--quick]` (what `make bench` runs): starts the
/// echo floor, memcached, Redis and dipc (sysv, posix, tdb), runs the same workloads
/// against each in alternation (A B C ... A B C ...), and prints a table of medians with
/// the ratios dipc/memcached, dipc/Redis and dipc/floor, p99 over the floor's and server
/// CPU per request over memcached's, then the ratios issue 17 names per cell
/// (`Ratios.table`). Writes raw.csv, medians.csv, ratios.csv, table.md, throughput.png
/// and p99.png (with gnuplot, when installed) into --out.
struct SuiteBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "dipc (sysv, posix, tdb) against memcached, Redis and the echo floor: the performance table.")

    @Option(help: "Directory holding the dipc and dipcrm executables.") var bin: String
    @Option(help: "Directory for raw.csv, medians.csv, table.md, throughput.png.") var out: String
    @Flag(help: "A two-minute subset: 64 B, 90 % reads, 1/16/64/256 connections, shorter windows.") var quick = false
    @Option(help: "Rounds per cell (each server once per round; medians reported).") var rounds: Int?
    @Option(help: "Seconds measured per run.") var seconds: Double?
    @Option(help: "Seconds of warm-up per run.") var warmup: Double?
    @Option(help: "Comma-separated connection counts.") var connections: String?
    @Option(help: "The memcached executable.") var memcached: String = "memcached"
    @Option(help: "The redis-server executable (Redis 7).") var redis: String = "redis-server"
    @Flag(help: "Skip the idle-connection, start and dipcrm measurements.") var noFootprint = false

    struct Cell: Hashable {
        var connections: Int
        var valueSize: Int
        var readRatio: Double
    }

    func run() throws {
        Interruption.install()
        let rounds = self.rounds ?? 3
        let seconds = self.seconds ?? (quick ? 0.8 : 2)
        let warmup = self.warmup ?? (quick ? 0.2 : 0.5)
        let counts = try connections.map { try $0.split(separator: ",").map { guard let n = Int($0), n > 0 else { throw ValidationError("bad --connections") }; return n } }
            ?? [1, 16, 64, 256]
        let sizes = quick ? [64] : [64, 4096]
        let ratios = quick ? [0.9] : [0.9, 0.5]
        mkdir(out, 0o755)
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-suite")
        defer { scratch.remove() }

        var servers: [ServerUnderTest] = []
        defer { for server in servers.reversed() { server.stop() } }
        servers.append(try ChildServer.echoFloor(scratch: scratch.path))
        guard let memcachedPath = Processes.find(memcached) else {
            throw BenchError("memcached not found (`make bench` installs it)")
        }
        servers.append(try ChildServer.memcached(path: memcachedPath, scratch: scratch.path))
        guard let redisPath = Processes.find(redis) else {
            throw BenchError("\(redis) not found (`make bench` installs redis-server)")
        }
        servers.append(try ChildServer.redis(path: redisPath, scratch: scratch.path))
        var dipcServers: [DipcServer] = []
        for backend in ["sysv", "posix", "tdb"] {
            let server = try DipcServer(bin: bin, scratch: scratch.path, backend: backend)
            dipcServers.append(server)
            servers.append(server)
        }

        print("## dipc-bench suite\(quick ? " (QUICK)" : "")")
        print()
        let machine = Machine.describe()
        print("Machine: \(machine)")
        for server in dipcServers { print("dipc: \(server.arguments.joined(separator: " ")) — \(server.startLine)") }
        for case let server as ChildServer in servers { print("\(server.label): \(server.commandLine)") }
        print("redis: \(AccessBenchmark.redisVersion(redisPath, scratch: scratch.path))")
        print("Workload: closed loop, one blocking connection per thread, \(DipcServer.mailboxes) mailboxes/keys chosen "
              + "uniformly, \(String(format1: warmup, digits: 1)) s warm-up + \(String(format1: seconds, digits: 1)) s measured "
              + "per run, \(rounds) rounds alternating the servers; medians. CPU = server utime+stime (/proc/PID/stat) ÷ requests.")
        print()

        let raw = try CSVFile(path: "\(out)/raw.csv", header: "round,server,connections,value_bytes,read_ratio,requests,ops_per_s,p50_us,p99_us,p999_us,server_cpu_us_per_req")
        var cells: [Cell] = []
        for size in sizes { for ratio in ratios { for count in counts { cells.append(Cell(connections: count, valueSize: size, readRatio: ratio)) } } }
        var medians: [Cell: [String: Median]] = [:]
        for cell in cells {
            var runs: [String: [LoadResult]] = [:]
            for round in 0..<rounds {
                for server in servers {
                    if Interruption.requested { throw BenchError("interrupted") }
                    let spec = LoadSpec(proto: server.proto, port: server.port, connections: cell.connections,
                                        valueSize: cell.valueSize, readRatio: cell.readRatio, keys: DipcServer.mailboxes,
                                        warmupSeconds: warmup, seconds: seconds, verify: false, serverPID: server.pid)
                    let result = try LoadGenerator.run(spec)
                    runs[server.label, default: []].append(result)
                    raw.write([String(round + 1), server.label] + Self.csvFields(result))
                }
            }
            medians[cell] = runs.mapValues(Median.init)
            fputs("done: \(cell.connections) connections, \(sizeLabel(cell.valueSize)), \(Int(cell.readRatio * 100)) % reads\n", stderr)
        }
        raw.close()

        let labels = servers.map(\.label)
        var rows: [[String]] = []
        let mediansCSV = try CSVFile(path: "\(out)/medians.csv", header: "server,connections,value_bytes,read_ratio,ops_per_s,p50_us,p99_us,server_cpu_us_per_req,ratio_memcached,ratio_floor,ratio_redis,p99_over_floor,cpu_over_memcached")
        for cell in cells {
            guard let byServer = medians[cell] else { continue }
            for label in labels {
                guard let m = byServer[label] else { continue }
                let vsMemcached = byServer["memcached"].map { m.opsPerSecond / $0.opsPerSecond }
                let vsFloor = byServer["floor"].map { m.opsPerSecond / $0.opsPerSecond }
                let vsRedis = byServer["redis"].map { m.opsPerSecond / $0.opsPerSecond }
                let p99OverFloor = byServer["floor"].map { m.p99 / $0.p99 }
                let cpuOverMemcached = byServer["memcached"].flatMap { reference in m.cpu.flatMap { cpu in reference.cpu.map { cpu / $0 } } }
                let isDipc = !["memcached", "floor", "redis"].contains(label)
                func ratio(_ value: Double?, shown: Bool) -> String { shown ? value.map { String(format1: $0, digits: 2) } ?? "–" : "" }
                rows.append([String(cell.connections), sizeLabel(cell.valueSize), "\(Int(cell.readRatio * 100)) %", label,
                             grouped(m.opsPerSecond), micros(m.p50), micros(m.p99), m.cpu.map { String(format1: $0, digits: 1) } ?? "–",
                             ratio(vsMemcached, shown: isDipc || label == "redis"), ratio(vsRedis, shown: isDipc),
                             ratio(vsFloor, shown: label != "floor"), ratio(p99OverFloor, shown: label != "floor"),
                             ratio(cpuOverMemcached, shown: label != "memcached")])
                mediansCSV.write([label, String(cell.connections), String(cell.valueSize), String(cell.readRatio),
                                  String(format1: m.opsPerSecond, digits: 0), String(format1: m.p50, digits: 1),
                                  String(format1: m.p99, digits: 1), m.cpu.map { String(format1: $0, digits: 2) } ?? "",
                                  vsMemcached.map { String(format1: $0, digits: 3) } ?? "", vsFloor.map { String(format1: $0, digits: 3) } ?? "",
                                  vsRedis.map { String(format1: $0, digits: 3) } ?? "", p99OverFloor.map { String(format1: $0, digits: 3) } ?? "",
                                  cpuOverMemcached.map { String(format1: $0, digits: 3) } ?? ""])
            }
        }
        mediansCSV.close()
        let mainTable = renderTable(["conns", "value", "reads", "server", "ops/s", "p50 µs", "p99 µs", "CPU µs/req", "×memcached",
                                     "×Redis", "×floor", "p99 ×floor", "CPU ×memcached"],
                                    rows, rightAligned: [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        print(mainTable)
        let ratioTable = try Ratios.table(cells: cells, medians: medians, csvPath: "\(out)/ratios.csv")
        print()
        print(ratioTable)
        let table = mainTable + "\n\n" + ratioTable
        Plot.write(out: out, cells: cells, labels: labels, medians: medians)
        Plot.write(out: out, cells: cells, labels: labels, medians: medians, metric: .p99)

        let syncTable = try measureTDB(scratch: scratch.path, seconds: seconds, warmup: warmup, rounds: rounds,
                                       sysv: dipcServers[0], tdb: dipcServers[2])
        print()
        print(syncTable)

        var footprint = ""
        if !noFootprint {
            footprint = try Footprint.measure(bin: bin, scratch: scratch.path, idleConnections: quick ? 300 : 1000)
            print()
            print(footprint)
        }
        // Stop now, so dipcrm is timed and reported.
        for server in servers.reversed() { server.stop() }
        let timings = "Start to ready (`dipc` returning), ms: "
            + dipcServers.map { "\($0.label) \(String(format1: $0.startSeconds * 1000, digits: 1))" }.joined(separator: ", ")
            + ". `dipcrm`, ms: "
            + dipcServers.map { "\($0.label) \($0.stopSeconds.map { String(format1: $0 * 1000, digits: 1) } ?? "failed")" }.joined(separator: ", ")
            + "."
        print()
        print(timings)
        let file = fopen("\(out)/table.md", "w")
        if let file {
            fputs("Machine: \(machine)\nFinished with load average \(Machine.loadAverage() ?? "?").\n\n\(table)\n\n\(syncTable)\n\n\(footprint)\n\n\(timings)\n", file)
            fclose(file)
        }
        print()
        print("Load average at the end: \(Machine.loadAverage() ?? "?")")
        print("Raw results: \(out)/raw.csv; medians: \(out)/medians.csv; ratios: \(out)/ratios.csv; "
              + "plots: \(out)/throughput.png, \(out)/p99.png")
    }

    /// tdb against sysv on reads only (16 connections, 64 B), then tdb without and with
    /// `--sync` on 50 % writes (1 and 16 connections, 64 B).
    func measureTDB(scratch: String, seconds: Double, warmup: Double, rounds: Int, sysv: DipcServer, tdb: DipcServer) throws -> String {
        let synced = try DipcServer(bin: bin, scratch: scratch, backend: "tdb", options: ["--sync"], label: "tdb --sync")
        defer { synced.stop() }
        var rows: [[String]] = []
        let cases: [(connections: Int, readRatio: Double, servers: [DipcServer])] = [
            (16, 1.0, [sysv, tdb]), (1, 0.5, [tdb, synced]), (16, 0.5, [tdb, synced]),
        ]
        for (count, ratio, servers) in cases {
            var runs: [String: [LoadResult]] = [:]
            for _ in 0..<rounds {
                for server in servers {
                    if Interruption.requested { throw BenchError("interrupted") }
                    let spec = LoadSpec(proto: .dipc, port: server.port, connections: count, valueSize: 64, readRatio: ratio,
                                        keys: DipcServer.mailboxes, warmupSeconds: warmup, seconds: seconds, verify: false,
                                        serverPID: server.pid)
                    runs[server.label, default: []].append(try LoadGenerator.run(spec))
                }
            }
            let first = Median(runs[servers[0].label]!)
            for server in servers {
                let m = Median(runs[server.label]!)
                rows.append([String(count), "\(Int(ratio * 100)) %", server.label, grouped(m.opsPerSecond), micros(m.p50), micros(m.p99),
                             m.cpu.map { String(format1: $0, digits: 1) } ?? "–",
                             String(format1: m.opsPerSecond / first.opsPerSecond, digits: 2)])
            }
        }
        return "tdb against sysv (reads only), and tdb without and with `--sync` (64 B values, medians of \(rounds)):\n\n"
            + renderTable(["conns", "reads", "server", "ops/s", "p50 µs", "p99 µs", "CPU µs/req", "ops ratio"], rows,
                          rightAligned: [0, 1, 3, 4, 5, 6, 7])
    }

    static func csvFields(_ r: LoadResult) -> [String] {
        [String(r.spec.connections), String(r.spec.valueSize), String(r.spec.readRatio), String(r.requests),
         String(format1: r.opsPerSecond, digits: 0), String(format1: r.p50Microseconds, digits: 1),
         String(format1: r.p99Microseconds, digits: 1), String(format1: r.p999Microseconds, digits: 1),
         r.serverCPUMicrosecondsPerRequest.map { String(format1: $0, digits: 2) } ?? ""]
    }
}

/// Medians over rounds, each figure on its own.
struct Median {
    var opsPerSecond: Double
    var p50: Double
    var p99: Double
    var cpu: Double?

    init(_ results: [LoadResult]) {
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        opsPerSecond = median(results.map(\.opsPerSecond))
        p50 = median(results.map(\.p50Microseconds))
        p99 = median(results.map(\.p99Microseconds))
        let cpus = results.compactMap(\.serverCPUMicrosecondsPerRequest)
        cpu = cpus.isEmpty ? nil : median(cpus)
    }
}

/// A CSV file written line by line.
final class CSVFile {
    private let file: UnsafeMutablePointer<FILE>

    init(path: String, header: String) throws {
        guard let file = fopen(path, "w") else { throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))") }
        self.file = file
        fputs(header + "\n", file)
    }

    func write(_ fields: [String]) { fputs(fields.joined(separator: ",") + "\n", file) }
    func close() { fflush(file) }
    deinit { fclose(file) }
}
