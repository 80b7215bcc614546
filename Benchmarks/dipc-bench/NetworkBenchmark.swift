@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// `dipc-bench network --bin DIR`: a real `dipc` server against memcached, over TCP,
/// with N client connections each in its own thread doing request/response round trips.
struct NetworkBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "dipc r/w against memcached get/set over TCP: ops/s and p99 per value size and client count.",
        discussion: """
            Starts DIR/dipc (sysv, default options, 16 mailboxes of 64 KiB, 4 KiB packets, a free port, \
            a temporary DIPC_RUNTIME_DIR) and memcached (-l 127.0.0.1 -U 0 -t 2 -m 64, a free port), \
            measures, and always stops both (dipcrm, then SIGTERM) — also after an error or Ctrl-C.
            """)

    @Option(help: "Directory holding the dipc and dipcrm executables.") var bin: String
    @Option(help: "Seconds measured per cell.") var seconds: Double = 2
    @Option(help: "Comma-separated client counts.") var clients: String = "1,8,32"
    @Option(help: "Comma-separated value sizes in bytes (at most 65536).") var sizes: String = "64,4096"
    @Option(help: "The memcached executable.") var memcached: String = "memcached"

    static let mailboxes = 16

    func validate() throws {
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        for tool in ["dipc", "dipcrm"] where access("\(bin)/\(tool)", X_OK) != 0 {
            throw ValidationError("\(bin)/\(tool) is not an executable (build with `swift build -c release`)")
        }
        guard !(try list(clients)).isEmpty, try list(sizes).allSatisfy({ $0 <= 65536 }) else {
            throw ValidationError("--clients needs a value and --sizes at most 65536")
        }
    }

    func list(_ text: String) throws -> [Int] {
        try text.split(separator: ",").map {
            guard let n = Int($0), n > 0 else { throw ValidationError("\($0) is not a positive number") }
            return n
        }
    }

    func run() throws {
        Interruption.install()
        let clientCounts = try list(clients), valueSizes = try list(sizes)
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-network")
        defer { scratch.remove() }

        let dipc = try DipcServer(bin: bin, scratch: scratch.path)
        defer { dipc.stop() }
        var memcachedServer: MemcachedServer?
        var memcachedNote: String?
        if let path = Processes.find(memcached) {
            do {
                memcachedServer = try MemcachedServer(path: path, scratch: scratch.path)
            } catch {
                memcachedNote = "memcached did not start: \(error)"
            }
        } else {
            memcachedNote = "memcached not found (`make bench` installs it); its columns are empty"
        }
        defer { memcachedServer?.stop() }

        print("## dipc-bench network")
        print()
        print("Machine: \(Machine.describe())")
        print("Server: \(dipc.startLine)")
        if let memcachedServer { print("Against: \(memcachedServer.version) \(memcachedServer.arguments.joined(separator: " "))") }
        if let memcachedNote { print("note: \(memcachedNote)") }
        print("Workload: N client connections to 127.0.0.1, one thread each, sequential round trips "
              + "(request, then the whole reply) for \(seconds) s per cell; client i uses mailbox/key i mod \(Self.mailboxes). "
              + "read = dipc `r N` / memcached `get`; write = dipc `w N LEN`+data / memcached `set`.")
        print()

        var rows: [[String]] = []
        for size in valueSizes {
            let value = (0..<size).map { UInt8(0x61 + $0 % 26) }
            try dipc.prefill(value)
            try memcachedServer?.prefill(value)
            for op in [Operation.read, .write] {
                for count in clientCounts {
                    if Interruption.requested { break }
                    let d = try Self.measure(.dipc, port: dipc.port, op: op, value: value, clients: count, seconds: seconds)
                    let m = try memcachedServer.map {
                        try Self.measure(.memcached, port: $0.port, op: op, value: value, clients: count, seconds: seconds)
                    }
                    let ratio = m.map { String(format1: d.opsPerSecond / max($0.opsPerSecond, 1), digits: 2) + "×" } ?? "–"
                    rows.append([op == .read ? "read" : "write", sizeLabel(size), String(count),
                                 grouped(d.opsPerSecond), micros(d.p99),
                                 m.map { grouped($0.opsPerSecond) } ?? "–", micros(m?.p99), ratio])
                }
            }
        }
        printTable(["op", "value", "clients", "dipc ops/s", "dipc p99 µs", "memcached ops/s", "memcached p99 µs",
                    "dipc/memcached"], rows, rightAligned: [1, 2, 3, 4, 5, 6, 7])
        if Interruption.requested { throw BenchError("interrupted; the table is incomplete") }
    }

    enum Server: Sendable { case dipc, memcached }
    enum Operation: Sendable { case read, write }

    struct Result {
        var opsPerSecond: Double
        var p99: Double?
    }

    struct ClientResult: @unchecked Sendable {
        var latencies = Latencies(reserving: 1 << 16)
        var error: String?
    }

    /// One cell: `clients` connections, each on its own thread, for `seconds`.
    static func measure(_ server: Server, port: Int, op: Operation, value: [UInt8], clients: Int,
                        seconds: Double) throws -> Result {
        let gate = StartGate(parties: clients, seconds: seconds)
        let results = Workers.run(clients) { index in
            client(server, port: port, op: op, value: value, index: index, gate: gate)
        }
        let elapsed = now() - gate.start
        if let error = results.compactMap(\.error).first {
            throw BenchError("\(server) \(op) with \(clients) clients: \(error)")
        }
        var all = Latencies()
        for result in results { all.merge(result.latencies) }
        return Result(opsPerSecond: Double(all.count) / elapsed, p99: all.quantileMicroseconds(0.99))
    }

    static func client(_ server: Server, port: Int, op: Operation, value: [UInt8], index: Int,
                       gate: StartGate) -> ClientResult {
        var result = ClientResult()
        let connection: RawConnection
        do {
            connection = try RawConnection(port: port)
        } catch {
            result.error = "\(error)"
            _ = gate.arriveAndWait()
            return result
        }
        defer { connection.close() }
        let mailbox = index % mailboxes
        let request = Self.request(server, op: op, mailbox: mailbox, value: value)
        let deadline = UInt64(gate.arriveAndWait() * 1e9)
        do {
            while !Interruption.requested {
                let start = nowNanoseconds()
                if start >= deadline { break }
                try connection.send(request)
                try Self.readReply(server, op: op, connection: connection, size: value.count)
                result.latencies.add(nowNanoseconds() - start)
            }
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    static func request(_ server: Server, op: Operation, mailbox: Int, value: [UInt8]) -> [UInt8] {
        switch (server, op) {
        case (.dipc, .read): return Array("r \(mailbox)\n".utf8)
        case (.dipc, .write): return Array("w \(mailbox) \(value.count)\n".utf8) + value
        case (.memcached, .read): return Array("get bench:\(mailbox)\r\n".utf8)
        case (.memcached, .write): return Array("set bench:\(mailbox) 0 0 \(value.count)\r\n".utf8) + value + [0x0D, 0x0A]
        }
    }

    /// Reads one whole reply and checks it.
    static func readReply(_ server: Server, op: Operation, connection: RawConnection, size: Int) throws {
        let line = try connection.readLine()
        switch (server, op) {
        case (.dipc, .read):
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "ok", let length = Int(fields[1]), length == size else {
                throw BenchError("unexpected dipc reply \"\(line)\"")
            }
            try connection.skip(length)
        case (.dipc, .write):
            guard line.hasPrefix("ok ") else { throw BenchError("unexpected dipc reply \"\(line)\"") }
        case (.memcached, .read):
            let fields = line.split(separator: " ")
            guard fields.count >= 4, fields[0] == "VALUE", let length = Int(fields[3]), length == size else {
                throw BenchError("unexpected memcached reply \"\(line)\"")
            }
            try connection.skip(length + 2)
            let end = try connection.readLine()
            guard end == "END" else { throw BenchError("unexpected memcached reply \"\(end)\"") }
        case (.memcached, .write):
            guard line == "STORED" else { throw BenchError("unexpected memcached reply \"\(line)\"") }
        }
    }
}

/// The dipc server under test: started detached by `DIR/dipc`, stopped by `DIR/dipcrm`.
final class DipcServer {
    let bin: String
    let port: Int
    let environment: [String: String]
    let scratch: String
    let startLine: String
    private var running = true

    init(bin: String, scratch: String) throws {
        self.bin = bin
        self.scratch = scratch
        port = try Processes.freePort()
        let runtime = "\(scratch)/runtime"
        mkdir(runtime, 0o700)
        environment = ["DIPC_RUNTIME_DIR": runtime]
        let arguments = [String(NetworkBenchmark.mailboxes), "64", String(port), "4"]
        let result = try Processes.run("\(bin)/dipc", arguments, environment: environment, scratch: scratch)
        guard result.status == 0 else {
            running = false
            throw BenchError("\(bin)/dipc \(arguments.joined(separator: " ")) failed (exit \(result.status)): "
                             + result.stderr.trimmingCharacters(in: "\n "))
        }
        startLine = result.stdout.trimmingCharacters(in: "\n ")
    }

    func prefill(_ value: [UInt8]) throws {
        let connection = try DIPCConnection(port: port)
        defer { connection.close() }
        for mailbox in 0..<NetworkBenchmark.mailboxes { _ = try connection.write(mailbox, value) }
        let message = try connection.read(0)
        guard message.data == value else { throw BenchError("dipc returned other data than it was given") }
    }

    /// `dipcrm PORT`; if that fails, SIGTERM to the pid of the runtime record.
    func stop() {
        guard running else { return }
        running = false
        let record = Processes.readFile("\(environment["DIPC_RUNTIME_DIR"]!)/dipc-\(port).record")
        if let result = try? Processes.run("\(bin)/dipcrm", [String(port)], environment: environment, scratch: scratch),
           result.status == 0 { return }
        fputs("dipc-bench: dipcrm \(port) failed; sending SIGTERM to the server\n", stderr)
        for line in record.split(separator: "\n") where line.hasPrefix("pid=") {
            if let pid = pid_t(line.dropFirst(4)) {
                kill(pid, SIGTERM)
                let deadline = now() + 5
                while kill(pid, 0) == 0 && now() < deadline { usleep(20_000) }
                if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
            }
        }
    }
}

/// The memcached under test: a child process on a free port, stopped with SIGTERM.
final class MemcachedServer {
    let port: Int
    let pid: pid_t
    let arguments: [String]
    let version: String
    private var running = true

    init(path: String, scratch: String) throws {
        port = try Processes.freePort()
        var arguments = ["-p", String(port), "-l", "127.0.0.1", "-U", "0", "-t", "2", "-m", "64"]
        // memcached refuses to run as root unless told which user to be.
        if geteuid() == 0 { arguments += ["-u", "root"] }
        self.arguments = arguments
        version = ((try? Processes.run(path, ["-V"], scratch: scratch, timeout: 5))?.stdout ?? "memcached")
            .trimmingCharacters(in: "\n ")
        pid = try Processes.spawn(path, arguments, stdoutPath: "\(scratch)/memcached.log", stderrPath: "\(scratch)/memcached.log")
        guard Processes.waitForPort(port, timeout: 5) else {
            Processes.stop(pid)
            running = false
            throw BenchError("memcached did not accept connections on port \(port): "
                             + Processes.readFile("\(scratch)/memcached.log").trimmingCharacters(in: "\n "))
        }
    }

    func prefill(_ value: [UInt8]) throws {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        for key in 0..<NetworkBenchmark.mailboxes {
            try connection.send(NetworkBenchmark.request(.memcached, op: .write, mailbox: key, value: value))
            try NetworkBenchmark.readReply(.memcached, op: .write, connection: connection, size: value.count)
        }
    }

    func stop() {
        guard running else { return }
        running = false
        Processes.stop(pid)
    }
}
