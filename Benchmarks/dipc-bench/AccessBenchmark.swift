@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench access --bin DIR --out DIR [--quick]` (`make bench-access`, part of
/// `make bench`): what the access transports cost. One dipc server (sysv) serves TCP
/// loopback and `--unix`; a second serves TLS (`--tls-cert`); Redis 7 serves TLS only
/// (`--port 0 --tls-port P`), with certificates made by the `openssl` CLI for the run.
/// Each workload runs against each in alternation, medians of the rounds; prints ops/s,
/// p99 and server CPU per request, and the ratios TLS CPU/request ÷ TCP, dipc TLS ops/s
/// ÷ Redis TLS ops/s and Unix ops/s ÷ TCP ops/s. Writes access.csv and access.md into
/// --out. Speed goals are reported, never asserted.
struct AccessBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access",
        abstract: "dipc over TLS against plain TCP and against Redis with TLS; the Unix socket against TCP loopback.")

    @Option(help: "Directory holding the dipc and dipcrm executables.") var bin: String
    @Option(help: "Directory for access.csv and access.md.") var out: String
    @Flag(help: "One round of shorter windows.") var quick = false
    @Option(help: "Rounds per cell (each transport once per round; medians reported).") var rounds: Int?
    @Option(help: "Seconds measured per run.") var seconds: Double?
    @Option(help: "Seconds of warm-up per run.") var warmup: Double?
    @Option(help: "Fraction of requests that are reads.") var readRatio: Double = 0.9
    @Option(help: "The redis-server executable (Redis 7, built with TLS).") var redis: String = "redis-server"

    /// One way to reach one server.
    struct Variant {
        let label: String
        let proto: BenchProtocol
        let port: Int
        let pid: pid_t
        var unixPath: String? = nil
        var tlsCA: String? = nil
    }

    struct Cell: Hashable {
        var connections: Int
        var valueSize: Int
    }

    func run() throws {
        Interruption.install()
        let rounds = self.rounds ?? (quick ? 1 : 3)
        let seconds = self.seconds ?? (quick ? 0.8 : 2)
        let warmup = self.warmup ?? (quick ? 0.2 : 0.5)
        guard let redisPath = Processes.find(redis) else { throw BenchError("\(redis) not found (`make bench-access` installs redis-server)") }
        guard let openssl = Processes.find("openssl") else { throw BenchError("openssl not found (`make deps` installs it)") }
        mkdir(out, 0o755)
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-access")
        defer { scratch.remove() }
        let certificates = try BenchCertificates(openssl: openssl, dir: scratch.path)

        let socketPath = "\(scratch.path)/dipc.sock"
        let plain = try DipcServer(bin: bin, scratch: scratch.path, backend: "sysv", options: ["--unix", socketPath], label: "dipc tcp")
        defer { plain.stop() }
        let tls = try DipcServer(bin: bin, scratch: scratch.path, backend: "sysv",
                                 options: ["--tls-cert", certificates.serverCert, "--tls-key", certificates.serverKey], label: "dipc tls")
        defer { tls.stop() }
        let redisServer = try ChildServer(label: "redis tls", proto: .redis, path: redisPath, arguments: { port in
            ["--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--tls-cert-file", certificates.serverCert,
             "--tls-key-file", certificates.serverKey, "--tls-ca-cert-file", certificates.ca, "--tls-auth-clients", "no",
             "--save", "", "--appendonly", "no", "--dir", scratch.path, "--maxclients", "1100"]
        }, scratch: scratch.path)
        defer { redisServer.stop() }
        let variants = [
            Variant(label: "dipc tcp", proto: .dipc, port: plain.port, pid: plain.pid),
            Variant(label: "dipc unix", proto: .dipc, port: plain.port, pid: plain.pid, unixPath: socketPath),
            Variant(label: "dipc tls", proto: .dipc, port: tls.port, pid: tls.pid, tlsCA: certificates.ca),
            Variant(label: "redis tls", proto: .redis, port: redisServer.port, pid: redisServer.pid, tlsCA: certificates.ca),
        ]

        print("## dipc-bench access\(quick ? " (QUICK)" : "")")
        print()
        let machine = Machine.describe()
        print("Machine: \(machine)")
        print("dipc: \(plain.arguments.joined(separator: " ")) — \(plain.startLine)")
        print("dipc: \(tls.arguments.joined(separator: " ")) — \(tls.startLine)")
        print("redis: \(redisServer.commandLine) — \(Self.redisVersion(redisPath, scratch: scratch.path))")
        print("Certificates: EC P-256, made by `openssl req`/`openssl x509` for this run; clients verify the server "
              + "(\(try Self.negotiatedTLS(port: tls.port, caFile: certificates.ca)) with dipc, "
              + "\(try Self.negotiatedTLS(port: redisServer.port, caFile: certificates.ca)) with Redis).")
        print("Workload: closed loop, one blocking connection per thread (the same client code for dipc and Redis, TLS by OpenSSL), "
              + "\(DipcServer.mailboxes) mailboxes/keys chosen uniformly, \(Int(readRatio * 100)) % reads, "
              + "\(String(format1: warmup, digits: 1)) s warm-up + \(String(format1: seconds, digits: 1)) s measured per run, "
              + "\(rounds) rounds alternating the transports; medians. CPU = server utime+stime (/proc/PID/stat) ÷ requests.")
        print()

        let raw = try CSVFile(path: "\(out)/access.csv", header: "round,transport,connections,value_bytes,read_ratio,requests,ops_per_s,p50_us,p99_us,p999_us,server_cpu_us_per_req")
        var cells: [Cell] = []
        for size in [64, 4096] { for count in [16, 64] { cells.append(Cell(connections: count, valueSize: size)) } }
        var medians: [Cell: [String: Median]] = [:]
        for cell in cells {
            var runs: [String: [LoadResult]] = [:]
            for round in 0..<rounds {
                for variant in variants {
                    if Interruption.requested { throw BenchError("interrupted") }
                    let spec = LoadSpec(proto: variant.proto, port: variant.port, connections: cell.connections,
                                        valueSize: cell.valueSize, readRatio: readRatio, keys: DipcServer.mailboxes,
                                        warmupSeconds: warmup, seconds: seconds, verify: false, serverPID: variant.pid,
                                        unixPath: variant.unixPath, tlsCA: variant.tlsCA)
                    let result = try LoadGenerator.run(spec)
                    runs[variant.label, default: []].append(result)
                    raw.write([String(round + 1), variant.label] + SuiteBenchmark.csvFields(result))
                }
            }
            medians[cell] = runs.mapValues(Median.init)
            fputs("done: \(cell.connections) connections, \(sizeLabel(cell.valueSize))\n", stderr)
        }
        raw.close()

        var rows: [[String]] = []
        var ratioRows: [[String]] = []
        func ratio(_ a: Double?, _ b: Double?) -> String {
            guard let a, let b, b > 0 else { return "–" }
            return String(format1: a / b, digits: 2)
        }
        for cell in cells {
            guard let m = medians[cell] else { continue }
            for variant in variants {
                guard let v = m[variant.label] else { continue }
                rows.append([String(cell.connections), sizeLabel(cell.valueSize), variant.label, grouped(v.opsPerSecond),
                             micros(v.p99), v.cpu.map { String(format1: $0, digits: 1) } ?? "–"])
            }
            ratioRows.append([String(cell.connections), sizeLabel(cell.valueSize),
                              ratio(m["dipc tls"]?.cpu, m["dipc tcp"]?.cpu),
                              ratio(m["dipc tls"]?.opsPerSecond, m["redis tls"]?.opsPerSecond),
                              ratio(m["dipc unix"]?.opsPerSecond, m["dipc tcp"]?.opsPerSecond)])
        }
        let table = renderTable(["conns", "value", "transport", "ops/s", "p99 µs", "CPU µs/req"], rows,
                                rightAligned: [0, 1, 3, 4, 5])
        let ratios = renderTable(["conns", "value", "TLS CPU/req ÷ TCP (goal ≤ 1.3)", "dipc TLS ÷ Redis TLS ops/s (goal ≥ 1)",
                                  "Unix ÷ TCP ops/s (goal > 1)"], ratioRows, rightAligned: [0, 1, 2, 3, 4])
        print(table)
        print()
        print(ratios)
        let load = Machine.loadAverage() ?? "?"
        print()
        print("Load average at the end: \(load)")
        if let file = fopen("\(out)/access.md", "w") {
            fputs("Machine: \(machine)\nFinished with load average \(load).\n\n\(table)\n\n\(ratios)\n", file)
            fclose(file)
        }
        print("Raw results: \(out)/access.csv; tables: \(out)/access.md")
    }

    /// The TLS version and cipher a benchmark connection to `port` negotiates.
    static func negotiatedTLS(port: Int, caFile: String) throws -> String {
        let connection = try RawConnection(port: port)
        try connection.startTLS(caFile: caFile)
        return connection.tlsDescription ?? "no TLS"
    }

    /// `redis-server --version`'s first line.
    static func redisVersion(_ path: String, scratch: String) -> String {
        guard let result = try? Processes.run(path, ["--version"], scratch: scratch), result.status == 0 else { return "version unknown" }
        return result.stdout.trimmingCharacters(in: "\n ")
    }
}

/// A CA and a server certificate it signs for IP:127.0.0.1 (EC P-256, valid one day),
/// made with the `openssl` CLI in `dir`.
struct BenchCertificates {
    let ca: String
    let serverCert: String
    let serverKey: String

    init(openssl: String, dir: String) throws {
        ca = "\(dir)/ca.pem"
        serverCert = "\(dir)/server.pem"
        serverKey = "\(dir)/server.key"
        let ext = "\(dir)/server.ext"
        guard let file = fopen(ext, "w") else { throw BenchError("cannot write \(ext)") }
        fputs("subjectAltName=IP:127.0.0.1\n", file)
        fclose(file)
        let steps: [[String]] = [
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/ca.key",
             "-out", ca, "-days", "1", "-subj", "/CN=dipc-bench CA"],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", serverKey,
             "-out", "\(dir)/server.csr", "-subj", "/CN=127.0.0.1"],
            ["x509", "-req", "-in", "\(dir)/server.csr", "-CA", ca, "-CAkey", "\(dir)/ca.key", "-CAcreateserial",
             "-out", serverCert, "-days", "1", "-extfile", ext],
        ]
        for step in steps {
            let result = try Processes.run(openssl, step, scratch: dir)
            guard result.status == 0 else {
                throw BenchError("openssl \(step.joined(separator: " ")) failed: \(result.stderr.trimmingCharacters(in: "\n "))")
            }
        }
    }
}
