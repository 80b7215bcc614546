@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench load` (the default subcommand): the closed-loop load generator against
/// one server that is already running. Prints one machine-readable `result` line.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Closed-loop load against a running server; prints one `result key=value ...` line.",
        discussion: """
            Each connection is a thread with one blocking socket: request, whole reply, next request. \
            Keys are chosen uniformly; reads and writes at random in the given ratio. Latency percentiles \
            come from an HdrHistogram (1 ns .. 60 s, 3 significant digits). With --verify every value \
            written says which key, writer and sequence it belongs to, and every value read is checked: \
            a torn or foreign value stops the run with an error (exit 1).
            """)

    @Option(help: "dipc, memcached, redis or echo (the floor: dipc-bench echo-server).") var proto: String = "dipc"
    @Option(help: "Server port on 127.0.0.1.") var port: Int
    @Option(help: "Connect to this Unix-domain socket instead (dipc --unix).") var unix: String?
    @Option(help: "Speak TLS, verifying the server (as 127.0.0.1) against this CA file.") var tlsCa: String?
    @Option(help: "Connections, one thread each.") var connections: Int = 16
    @Option(help: "Value size in bytes.") var valueSize: Int = 64
    @Option(help: "Fraction of reads, 0...1.") var readRatio: Double = 0.9
    @Option(help: "Mailboxes (dipc) or keys (memcached) used.") var keys: Int = 16
    @Option(help: "Seconds run before measuring.") var warmup: Double = 0.5
    @Option(help: "Seconds measured.") var seconds: Double = 2
    @Flag(help: "Self-checking values: a torn or foreign value is an error.") var verify = false
    @Option(help: "The server's pid: report its CPU time per request (utime+stime from /proc/PID/stat).")
    var serverPid: Int32?

    func validate() throws {
        guard BenchProtocol(rawValue: proto) != nil else { throw ValidationError("--proto must be dipc, memcached, redis or echo") }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1...65535") }
        guard (1...4096).contains(connections) else { throw ValidationError("--connections must be in 1...4096") }
        guard (1...(1 << 20)).contains(valueSize) else { throw ValidationError("--value-size must be in 1...1048576") }
        guard (0...1).contains(readRatio) else { throw ValidationError("--read-ratio must be in 0...1") }
        guard keys >= 1 else { throw ValidationError("--keys must be at least 1") }
        guard warmup >= 0, seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600], --warmup >= 0") }
        if verify && valueSize < SelfCheckingValue.minimumSize {
            throw ValidationError("--verify needs --value-size of at least \(SelfCheckingValue.minimumSize)")
        }
    }

    func run() throws {
        Interruption.install()
        let spec = LoadSpec(proto: BenchProtocol(rawValue: proto)!, port: port, connections: connections, valueSize: valueSize,
                            readRatio: readRatio, keys: keys, warmupSeconds: warmup, seconds: seconds, verify: verify,
                            serverPID: serverPid, unixPath: unix, tlsCA: tlsCa)
        let result = try LoadGenerator.run(spec)
        print(result.line)
        if Interruption.requested { throw BenchError("interrupted") }
    }
}
