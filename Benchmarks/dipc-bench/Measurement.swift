@preconcurrency import Glibc
import Synchronization
import DIPCTestSupport

/// Seconds on the monotonic clock.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Nanoseconds on the monotonic clock.
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Latencies of one kind of operation, in nanoseconds.
struct Latencies {
    var samples: [UInt32] = []

    init(reserving capacity: Int = 0) { samples.reserveCapacity(capacity) }

    mutating func add(_ nanoseconds: UInt64) {
        samples.append(UInt32(clamping: nanoseconds))
    }

    mutating func merge(_ other: Latencies) { samples.append(contentsOf: other.samples) }

    var count: Int { samples.count }

    /// The `q` quantile (0...1) in microseconds, nil without samples.
    func quantileMicroseconds(_ q: Double) -> Double? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let index = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
        return Double(sorted[index]) / 1000
    }
}

/// Starts workers together: each calls `arriveAndWait()` once ready (connected,
/// warmed up); the measured interval starts when the last one arrives.
final class StartGate: Sendable {
    private let arrived = Atomic<Int>(0)
    private let startBits = Atomic<UInt64>(0)
    let parties: Int
    let seconds: Double

    init(parties: Int, seconds: Double) {
        self.parties = parties
        self.seconds = seconds
    }

    /// Blocks until every party arrived; returns the shared deadline (monotonic seconds).
    func arriveAndWait() -> Double {
        if arrived.add(1, ordering: .sequentiallyConsistent).newValue == parties {
            startBits.store(now().bitPattern, ordering: .sequentiallyConsistent)
        }
        while true {
            let bits = startBits.load(ordering: .sequentiallyConsistent)
            if bits != 0 { return Double(bitPattern: bits) + seconds }
            usleep(200)
        }
    }

    /// When the measured interval began.
    var start: Double { Double(bitPattern: startBits.load(ordering: .sequentiallyConsistent)) }
}

/// Set by SIGINT/SIGTERM: measurements stop early, then servers and stores are cleaned up.
let interrupted = Atomic<Bool>(false)

enum Interruption {
    /// Makes SIGINT and SIGTERM stop the measurement instead of the process, so that
    /// cleanup still runs.
    static func install() {
        let handler: @convention(c) (Int32) -> Void = { _ in interrupted.store(true, ordering: .relaxed) }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    static var requested: Bool { interrupted.load(ordering: .relaxed) }
}

// MARK: formatting

/// `1234567` → `1,234,567`.
func grouped(_ value: Double) -> String {
    let digits = String(Int(value.rounded()))
    var out = ""
    for (i, ch) in digits.reversed().enumerated() {
        if i > 0, i % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return String(out.reversed())
}

/// A latency in microseconds with sensible precision, or `–`.
func micros(_ value: Double?) -> String {
    guard let value else { return "–" }
    return value < 10 ? String(format1: value, digits: 2) : value < 100 ? String(format1: value, digits: 1)
        : String(Int(value.rounded()))
}

extension String {
    init(format1 value: Double, digits: Int) {
        var buffer = [CChar](repeating: 0, count: 64)
        _ = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(digits)f", $0) }
        self = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

/// A value size for a table: `64 B`, `4 KiB`.
func sizeLabel(_ bytes: Int) -> String {
    bytes >= 1024 && bytes % 1024 == 0 ? "\(bytes / 1024) KiB" : "\(bytes) B"
}

/// Prints a markdown table with aligned columns.
func printTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) {
    print(renderTable(header, rows, rightAligned: rightAligned))
}

/// A markdown table with aligned columns.
func renderTable(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        "| " + cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return rightAligned.contains(i) ? pad + cell : cell + pad
        }.joined(separator: " | ") + " |"
    }
    var lines = [line(header)]
    lines.append("|" + widths.enumerated().map { i, w in
        rightAligned.contains(i) ? String(repeating: "-", count: w + 1) + ":" : String(repeating: "-", count: w + 2)
    }.joined(separator: "|") + "|")
    for row in rows { lines.append(line(row)) }
    return lines.joined(separator: "\n")
}

// MARK: the machine

enum Machine {
    static func describe() -> String {
        var parts = ["nproc \(sysconf(Int32(_SC_NPROCESSORS_ONLN)))"]
        if let cpu = cpuModel() { parts.append(cpu) }
        parts.append("Linux \(kernelRelease())")
        if let load = loadAverage() { parts.append("load average \(load) at start") }
        parts.append(date())
        return parts.joined(separator: " · ")
    }

    /// The 1-minute load average from /proc/loadavg (other work competes with the benchmark).
    static func loadAverage() -> String? {
        let text = TextFile.read("/proc/loadavg")
        return text.split(separator: " ").first.map(String.init)
    }

    static func kernelRelease() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: info.release) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
    }

    static func cpuModel() -> String? {
        guard let file = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            let text = String(cString: line!)
            if text.hasPrefix("model name"), let colon = text.firstIndex(of: ":") {
                return text[text.index(after: colon)...].trimmingCharacters(in: " \t\n")
            }
        }
        return nil
    }

    static func date() -> String {
        var t = time(nil)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S %Z", &parts)
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s.removeFirst() }
        while let last = s.last, set.contains(last) { s.removeLast() }
        return String(s)
    }
}
