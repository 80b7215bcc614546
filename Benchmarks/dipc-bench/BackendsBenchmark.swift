@preconcurrency import Glibc
import ArgumentParser
import DIPCBackendProvider
import DIPCBackends
import DIPCCore
import DIPCTestSupport

/// `dipc-bench backends`: every backend × coordinator × thread count × value size,
/// through `SharedStore` (the coordinator included) without the network.
struct BackendsBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backends",
        abstract: "Reads/s, writes/s and p99 latency per backend, coordinator, thread count and value size (no network).",
        discussion: """
            Each thread runs a mixed workload on 16 mailboxes: 90% reads (r), 10% writes (w) of \
            whole values, mailbox chosen at random. Every cell gets a new store, removed afterwards.
            """)

    @Option(help: "Seconds measured per cell.") var seconds: Double = 0.5
    @Option(help: "Comma-separated backends.") var backends: String = "sysv,posix,tdb"
    @Option(help: "Comma-separated thread counts.") var threads: String = "1,8"
    @Option(help: "Comma-separated value sizes in bytes.") var sizes: String = "64,4096"
    @Option(help: "Percentage of writes in the mix.") var writePercent: Int = 10

    static let mailboxes = 16

    func validate() throws {
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        guard (0...100).contains(writePercent) else { throw ValidationError("--write-percent must be 0...100") }
        _ = try parsedBackends()
        guard !(try parsedInts(threads)).isEmpty, !(try parsedInts(sizes)).isEmpty else {
            throw ValidationError("--threads and --sizes need at least one value")
        }
    }

    func parsedBackends() throws -> [any BackendProvider] {
        try backends.split(separator: ",").map {
            guard let provider = BackendRegistry.defaults.provider(named: String($0)) else {
                throw ValidationError("unknown backend \($0)")
            }
            return provider
        }
    }

    func parsedInts(_ list: String) throws -> [Int] {
        try list.split(separator: ",").map {
            guard let n = Int($0), n > 0 else { throw ValidationError("\($0) is not a positive number") }
            return n
        }
    }

    func run() throws {
        Interruption.install()
        let kinds = try parsedBackends(), threadCounts = try parsedInts(threads), valueSizes = try parsedInts(sizes)
        let mailboxSize = valueSizes.max()!
        let geometry = StoreGeometry(mailboxes: Self.mailboxes, mailboxSize: mailboxSize)
        let scratch = try TemporaryDirectory(prefix: "dipc-bench-backends")
        defer { scratch.remove() }

        print("## dipc-bench backends")
        print()
        print("Machine: \(Machine.describe())")
        print("Workload: per thread \(100 - writePercent)% reads / \(writePercent)% writes on \(Self.mailboxes) mailboxes "
              + "of \(sizeLabel(mailboxSize)), random mailbox, \(seconds) s per cell, through SharedStore "
              + "(coordinator included, no network); tdb without --sync.")
        print()
        var rows: [[String]] = []
        for kind in kinds {
            for policy in CoordinatorPolicy.allCases {
                for threadCount in threadCounts {
                    for size in valueSizes {
                        if Interruption.requested { break }
                        let label = [type(of: kind).name, policy.rawValue, String(threadCount), sizeLabel(size)]
                        do {
                            let cell = try Self.measure(
                                backend: kind, policy: policy, geometry: geometry, threads: threadCount, valueSize: size,
                                seconds: seconds, writePercent: writePercent, scratch: scratch.path)
                            rows.append(label + [grouped(cell.readsPerSecond), grouped(cell.writesPerSecond),
                                                 micros(cell.readP99), micros(cell.writeP99)])
                        } catch {
                            rows.append(label + ["failed: \(error)", "", "", ""])
                        }
                    }
                }
            }
        }
        printTable(["backend", "coordinator", "threads", "value", "reads/s", "writes/s", "p99 read µs", "p99 write µs"],
                   rows, rightAligned: [2, 3, 4, 5, 6, 7])
        if Interruption.requested { throw BenchError("interrupted; the table is incomplete") }
    }

    struct Cell {
        var readsPerSecond: Double
        var writesPerSecond: Double
        var readP99: Double?
        var writeP99: Double?
    }

    /// What one thread measured.
    struct ThreadResult: @unchecked Sendable {
        var reads = Latencies(reserving: 1 << 16)
        var writes = Latencies(reserving: 1 << 14)
        var error: String?
    }

    static let counter = Counter()

    final class Counter: @unchecked Sendable {
        private var value = 0
        private var lock = pthread_mutex_t()
        init() { pthread_mutex_init(&lock, nil) }
        func next() -> Int {
            pthread_mutex_lock(&lock)
            defer { pthread_mutex_unlock(&lock) }
            value += 1
            return value
        }
    }

    /// One cell: a fresh store, prefilled; `threads` workers for `seconds`; the store detached (removed).
    static func measure(backend: any BackendProvider, policy: CoordinatorPolicy, geometry: StoreGeometry, threads: Int,
                        valueSize: Int, seconds: Double, writePercent: Int, scratch: String) throws -> Cell {
        let name = "bench-\(getpid())-\(counter.next())"
        let scratchStore = type(of: backend).scratchStore(
            for: StoreRequest(name: name, geometry: geometry, policy: policy), directory: scratch)
        let store = try scratchStore.open()
        defer {
            _ = try? store.detach()
            scratchStore.destroy()
        }
        let value = (0..<valueSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for mailbox in 0..<geometry.mailboxes {
            _ = try value.withUnsafeBytes { try store.write(mailbox, $0) }
        }
        let gate = StartGate(parties: threads, seconds: seconds)
        let results = TestThreads.collect(threads) { index in
            worker(store: store, index: index, value: value, writePercent: writePercent, gate: gate)
        }
        let elapsed = now() - gate.start
        if let error = results.compactMap(\.error).first { throw BenchError(error) }
        var reads = Latencies(), writes = Latencies()
        for result in results {
            reads.merge(result.reads)
            writes.merge(result.writes)
        }
        return Cell(readsPerSecond: Double(reads.count) / elapsed, writesPerSecond: Double(writes.count) / elapsed,
                    readP99: reads.quantileMicroseconds(0.99), writeP99: writes.quantileMicroseconds(0.99))
    }

    static func worker(store: any MailboxStore, index: Int, value: [UInt8], writePercent: Int, gate: StartGate) -> ThreadResult {
        var result = ThreadResult()
        var random = UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15
        var buffer = [UInt8](repeating: 0, count: value.count)
        let deadline = gate.arriveAndWait()
        let endNanoseconds = UInt64(deadline * 1e9)
        let mailboxes = UInt64(store.geometry.mailboxes)
        do {
            while true {
                random ^= random << 13
                random ^= random >> 7
                random ^= random << 17
                let mailbox = Int(random % mailboxes)
                let isWrite = Int((random >> 32) % 100) < writePercent
                let start = nowNanoseconds()
                if start >= endNanoseconds || Interruption.requested { break }
                if isWrite {
                    _ = try value.withUnsafeBytes { try store.write(mailbox, $0) }
                    result.writes.add(nowNanoseconds() - start)
                } else {
                    _ = try store.read(mailbox, into: &buffer)
                    result.reads.add(nowNanoseconds() - start)
                }
            }
        } catch {
            result.error = "\(error)"
        }
        return result
    }
}

/// A private temporary directory, removed with everything in it.
struct TemporaryDirectory {
    let path: String

    init(prefix: String) throws {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw BenchError("mkdtemp in \(base): \(String(cString: strerror(errno)))") }
        path = String(cString: made)
    }

    /// Removes the directory and everything in it.
    func remove() { TemporaryDirectory.removeTree(path) }

    private static func removeTree(_ path: String) {
        if let dir = opendir(path) {
            var entries: [(String, Bool)] = []
            while let entry = readdir(dir) {
                let file = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if file != ".", file != ".." { entries.append((file, entry.pointee.d_type == UInt8(DT_DIR))) }
            }
            closedir(dir)
            for (file, isDirectory) in entries {
                if isDirectory { removeTree("\(path)/\(file)") } else { unlink("\(path)/\(file)") }
            }
        }
        rmdir(path)
    }
}
