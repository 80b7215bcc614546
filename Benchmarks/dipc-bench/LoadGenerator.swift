@preconcurrency import Glibc
import Histogram
import DIPCTestSupport

/// One closed-loop workload: `connections` blocking connections, one thread each, each
/// sending one request and reading its whole reply before the next.
struct LoadSpec: Sendable {
    var proto: BenchProtocol
    var port: Int
    var connections: Int
    var valueSize: Int
    /// Fraction of requests that are reads (0...1); the rest are writes.
    var readRatio: Double
    /// Mailboxes (dipc) or keys (memcached) used, chosen uniformly at random.
    var keys: Int
    var warmupSeconds: Double
    var seconds: Double
    var verify: Bool
    /// The server's pid, for its CPU time over the measured window.
    var serverPID: pid_t?
    /// Connect to this Unix-domain socket instead of 127.0.0.1:`port`.
    var unixPath: String? = nil
    /// Speak TLS, verifying the server against this CA file.
    var tlsCA: String? = nil
}

/// What one workload measured.
struct LoadResult: Sendable {
    var spec: LoadSpec
    /// Requests completed inside the measured window.
    var requests: UInt64
    var reads: UInt64
    var writes: UInt64
    var elapsed: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var p999Microseconds: Double
    /// Server utime+stime over the measured window, in seconds; nil without a pid.
    var serverCPUSeconds: Double?

    var opsPerSecond: Double { Double(requests) / elapsed }
    /// Server CPU per request in microseconds.
    var serverCPUMicrosecondsPerRequest: Double? { serverCPUSeconds.map { requests > 0 ? $0 * 1e6 / Double(requests) : 0 } }

    /// The machine-readable result line: `result key=value ...`.
    var line: String {
        var fields = [
            "proto=\(spec.proto.rawValue)", "port=\(spec.port)", "connections=\(spec.connections)",
            "value_bytes=\(spec.valueSize)", "read_ratio=\(String(format1: spec.readRatio, digits: 2))",
            "keys=\(spec.keys)", "verify=\(spec.verify ? 1 : 0)", "seconds=\(String(format1: elapsed, digits: 3))",
            "requests=\(requests)", "reads=\(reads)", "writes=\(writes)",
            "ops_per_s=\(String(format1: opsPerSecond, digits: 0))",
            "p50_us=\(String(format1: p50Microseconds, digits: 1))", "p99_us=\(String(format1: p99Microseconds, digits: 1))",
            "p999_us=\(String(format1: p999Microseconds, digits: 1))",
        ]
        if let cpu = serverCPUMicrosecondsPerRequest { fields.append("server_cpu_us_per_req=\(String(format1: cpu, digits: 2))") }
        return "result " + fields.joined(separator: " ")
    }
}

enum LoadGenerator {
    private struct WorkerResult: @unchecked Sendable {
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000,
                                          numberOfSignificantValueDigits: .three)
        var reads: UInt64 = 0
        var writes: UInt64 = 0
        var error: String?
        var cpuSeconds: Double?
    }

    /// Writes a self-checking value to every key, so that reads (and `--verify`) find one.
    static func prefill(_ spec: LoadSpec) throws {
        guard spec.proto != .echo else { return }
        let client = try ProtocolClient(spec.proto, port: spec.port, keys: spec.keys, valueSize: spec.valueSize,
                                        verify: true, writer: 0xFFFF, unixPath: spec.unixPath, tlsCA: spec.tlsCA)
        for key in 0..<spec.keys { try client.write(key) }
        for key in 0..<spec.keys { try client.read(key) }
    }

    /// Runs the workload. Connections are made first; then `warmupSeconds` unmeasured,
    /// then `seconds` measured: a request counts when it completes inside the window.
    static func run(_ spec: LoadSpec) throws -> LoadResult {
        try prefill(spec)
        let gate = StartGate(parties: spec.connections + 1, seconds: spec.warmupSeconds)
        let results = TestThreads.collect(spec.connections + 1) { index -> WorkerResult in
            index == spec.connections ? sampleServer(spec, gate: gate) : client(spec, index: index, gate: gate)
        }
        if let error = results.compactMap(\.error).first { throw BenchError(error) }
        var histogram = results[0].histogram
        var reads: UInt64 = 0, writes: UInt64 = 0
        for (i, result) in results.enumerated() {
            if i > 0 { histogram.add(result.histogram) }
            reads += result.reads
            writes += result.writes
        }
        func micros(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        return LoadResult(spec: spec, requests: reads + writes, reads: reads, writes: writes, elapsed: spec.seconds,
                          p50Microseconds: micros(50), p99Microseconds: micros(99), p999Microseconds: micros(99.9),
                          serverCPUSeconds: results[spec.connections].cpuSeconds)
    }

    /// The extra party: reads the server's CPU time at the start and end of the window.
    private static func sampleServer(_ spec: LoadSpec, gate: StartGate) -> WorkerResult {
        var result = WorkerResult()
        let start = gate.arriveAndWait()
        sleepUntil(start)
        let before = spec.serverPID.flatMap(ProcessCPU.seconds)
        sleepUntil(start + spec.seconds)
        if let before, let after = spec.serverPID.flatMap(ProcessCPU.seconds) { result.cpuSeconds = after - before }
        return result
    }

    private static func client(_ spec: LoadSpec, index: Int, gate: StartGate) -> WorkerResult {
        var result = WorkerResult()
        let connection: ProtocolClient
        do {
            connection = try ProtocolClient(spec.proto, port: spec.port, keys: spec.keys, valueSize: spec.valueSize,
                                            verify: spec.verify, writer: index, unixPath: spec.unixPath, tlsCA: spec.tlsCA)
        } catch {
            result.error = "connection \(index): \(error)"
            _ = gate.arriveAndWait()
            return result
        }
        var random = FastRandom(seed: UInt64(index) &* 0x2545_F491_4F6C_DD1D &+ UInt64(getpid()))
        let windowStart = UInt64(gate.arriveAndWait() * 1e9)
        let windowEnd = windowStart + UInt64(spec.seconds * 1e9)
        let readThreshold = UInt64(spec.readRatio * Double(1 << 32))
        do {
            while !Interruption.requested {
                let key = random.below(spec.keys)
                let isRead = random.next() >> 32 < readThreshold
                let begin = nowNanoseconds()
                if begin >= windowEnd { break }
                if isRead { try connection.read(key) } else { try connection.write(key) }
                let end = nowNanoseconds()
                if end >= windowStart && end < windowEnd {
                    _ = result.histogram.record(max(end - begin, 1))
                    if isRead { result.reads += 1 } else { result.writes += 1 }
                }
            }
        } catch {
            result.error = "connection \(index): \(error)"
        }
        return result
    }

    private static func sleepUntil(_ deadline: Double) {
        while true {
            let left = deadline - now()
            if left <= 0 || Interruption.requested { return }
            usleep(useconds_t(min(left, 0.05) * 1e6))
        }
    }
}

/// A process's CPU time from `/proc/PID/stat` (utime + stime, all threads, including
/// exited ones).
enum ProcessCPU {
    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    static func seconds(_ pid: pid_t) -> Double? {
        let text = TextFile.read("/proc/\(pid)/stat")
        // The command name (field 2) may contain spaces: fields are counted after its ')'.
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / ticksPerSecond
    }
}
