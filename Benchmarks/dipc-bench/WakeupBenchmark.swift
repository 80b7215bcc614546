@preconcurrency import Glibc
import ArgumentParser
import DIPCTestSupport

/// `dipc-bench wakeup --bin DIR`: how long a consumer waiting in `c` on one server takes to
/// receive a message pushed through another server sharing the store.
struct WakeupBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wakeup",
        abstract: "Wake-up latency from a push on server A to a consumer waiting in `c` on server B (same store).",
        discussion: """
            Per backend, starts DIR/dipc twice (4 mailboxes of 4 KiB, 1 KiB packets, free ports, one --name, \
            a temporary DIPC_RUNTIME_DIR and DIPC_STATE_DIR) and repeats: the consumer sends `c 0 10000` to B; \
            once B's `s` reports it queued, the clock starts, `p 0 8` goes to A, and the clock stops when the \
            consumer's reply has arrived. Both servers are always stopped with dipcrm.
            """)

    @Option(help: "Directory holding the dipc and dipcrm executables.") var bin: String
    @Option(help: "Round trips per backend.") var rounds: Int = 1000
    @Option(help: "Comma-separated backends.") var backends: String = "sysv,posix,tdb"

    func validate() throws {
        guard (1...1_000_000).contains(rounds) else { throw ValidationError("--rounds must be in 1...1000000") }
        for tool in ["dipc", "dipcrm"] where access("\(bin)/\(tool)", X_OK) != 0 {
            throw ValidationError("\(bin)/\(tool) is not an executable (build with `swift build -c release`)")
        }
    }

    func run() throws {
        Interruption.install()
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-wakeup")
        defer { scratch.remove() }
        print("## dipc-bench wakeup")
        print()
        print("Machine: \(Machine.describe())")
        print("Workload: \(rounds) round trips per backend; latency = from sending `p 0 8` to server A until the reply "
              + "to `c 0 10000`, already waiting on server B, has arrived. `r 0` on B alone is the baseline round trip.")
        print()
        var rows: [[String]] = []
        for backend in backends.split(separator: ",").map(String.init) where !Interruption.requested {
            let pair = try ServerPair(bin: bin, backend: backend, scratch: scratch.path)
            defer { pair.stop() }
            let wakeups = try Self.measureWakeups(pair, rounds: rounds)
            let baseline = try Self.measureReads(port: pair.ports[1], rounds: rounds)
            rows.append([backend, String(wakeups.count), micros(wakeups.quantileMicroseconds(0.5)),
                         micros(wakeups.quantileMicroseconds(0.99)), micros(wakeups.quantileMicroseconds(1)),
                         micros(baseline.quantileMicroseconds(0.5))])
        }
        printTable(["backend", "round trips", "wake p50 µs", "wake p99 µs", "wake max µs", "`r` p50 µs"], rows,
                   rightAligned: [1, 2, 3, 4, 5])
        if Interruption.requested { throw BenchError("interrupted; the table is incomplete") }
    }

    static func measureWakeups(_ pair: ServerPair, rounds: Int) throws -> Latencies {
        let consumer = try RawConnection(port: pair.ports[1])
        let control = try RawConnection(port: pair.ports[1])
        let producer = try RawConnection(port: pair.ports[0])
        defer {
            consumer.close()
            control.close()
            producer.close()
        }
        var latencies = Latencies(reserving: rounds)
        let push = Array("p 0 8\nwake-up!".utf8)
        for _ in 0..<rounds where !Interruption.requested {
            try consumer.send(Array("c 0 10000\n".utf8))
            try waitUntilQueued(control)
            let start = nowNanoseconds()
            try producer.send(push)
            let line = try consumer.readLine()
            latencies.add(nowNanoseconds() - start)
            guard line.hasPrefix("ok 8 ") else { throw BenchError("consumer got \"\(line)\"") }
            try consumer.skip(8)
            let pushed = try producer.readLine()
            guard pushed.hasPrefix("ok ") else { throw BenchError("producer got \"\(pushed)\"") }
        }
        return latencies
    }

    /// Polls `s` until the server reports one queued request (the consumer's `c`).
    static func waitUntilQueued(_ control: RawConnection) throws {
        let deadline = now() + 10
        while now() < deadline {
            try control.send(Array("s\n".utf8))
            let line = try control.readLine()
            if line.split(separator: " ").contains("queued=1") { return }
        }
        throw BenchError("the consumer's `c` never showed as queued (is `dipc` older than the queue lines?)")
    }

    static func measureReads(port: Int, rounds: Int) throws -> Latencies {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        var latencies = Latencies(reserving: rounds)
        for _ in 0..<rounds where !Interruption.requested {
            let start = nowNanoseconds()
            try connection.send(Array("r 0\n".utf8))
            let line = try connection.readLine()
            let fields = line.split(separator: " ")
            guard fields.count == 3, fields[0] == "ok", let length = Int(fields[1]) else { throw BenchError("r 0 got \"\(line)\"") }
            try connection.skip(length)
            latencies.add(nowNanoseconds() - start)
        }
        return latencies
    }
}

/// Two `dipc` servers on free ports sharing one store (same backend and --name).
final class ServerPair {
    let bin: String
    let scratch: String
    let environment: [String: String]
    private(set) var ports: [Int] = []

    init(bin: String, backend: String, scratch: String) throws {
        self.bin = bin
        self.scratch = scratch
        let runtime = "\(scratch)/runtime-\(backend)", state = "\(scratch)/state-\(backend)"
        mkdir(runtime, 0o700)
        mkdir(state, 0o700)
        environment = ["DIPC_RUNTIME_DIR": runtime, "DIPC_STATE_DIR": state]
        let name = "bench-wakeup-\(getpid())"
        for _ in 0..<2 {
            let port = try LoopbackPort.free()
            let arguments = ["--backend", backend, "--name", name, "4", "4", String(port), "1"]
            let result = try Processes.run("\(bin)/dipc", arguments, environment: environment, scratch: scratch)
            guard result.status == 0 else {
                stop()
                throw BenchError("\(bin)/dipc \(arguments.joined(separator: " ")) failed (exit \(result.status)): "
                                 + result.stderr.trimmingCharacters(in: "\n "))
            }
            ports.append(port)
        }
    }

    func stop() {
        for port in ports {
            if let result = try? Processes.run("\(bin)/dipcrm", [String(port)], environment: environment, scratch: scratch),
               result.status == 0 { continue }
            fputs("dipc-bench: dipcrm \(port) failed; the server may still run (see \(environment["DIPC_RUNTIME_DIR"]!))\n", stderr)
        }
        ports = []
    }
}
