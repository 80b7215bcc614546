import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Starvation freedom end to end: two real servers sharing one store, for each policy
/// and backend. A stream of readers never keeps a writer out for long, and a stream of
/// writers never keeps a reader out (an unfair readers-writer lock fails one of the
/// two: glibc's default `pthread_rwlock` starves writers; `make bench-fairness` shows it).
///
/// The bound (2 s per request) is far above what either policy needs (tens of
/// milliseconds on an idle machine) so that a loaded machine does not fail it, and far
/// below what starvation looks like (no progress at all while the stream lasts).
@Suite("fairness")
struct FairnessTests {
    static let policies = ["fifo", "phase-fair"]
    /// Not etcd: the subject is the shared-memory readers-writer coordinator under each
    /// `--coordinator` policy; an etcd store has no coordinator (each `r`/`w` is one etcd
    /// operation whatever the policy, SPEC §4), and twelve 1 MiB readers saturate the
    /// one etcd node the other tests share, so what it would time is etcd's throughput.
    static var cases: [(String, String)] { E2E.hostStoreBackends.flatMap { b in policies.map { (b, $0) } } }

    /// The mailbox everyone fights over holds 1 MiB.
    static let valueSize = 1024 * 1024
    static let bound = 2.0
    static let measured = 20

    /// Requests on `servers` (round robin) in a tight loop on one thread each, until stopped.
    final class Stream: @unchecked Sendable {
        let stop = Locked(false)
        let requests = Locked(0)
        let errors = Locked<[String]>([])
        private let done = DispatchGroup()

        init(clients: Int, servers: [Server], _ request: @escaping @Sendable (Conn, Int) throws -> Void) {
            for i in 0..<clients {
                let port = servers[i % servers.count].port
                done.enter()
                Thread { [self] in
                    defer { done.leave() }
                    do {
                        let c = try Conn(port: port, timeout: 30)
                        var n = 0
                        while !stop.get {
                            try request(c, n)
                            n += 1
                            requests.withValue { $0 += 1 }
                        }
                    } catch {
                        errors.withValue { $0.append("client \(i): \(error)") }
                    }
                }.start()
            }
        }

        /// Waits until every client has been served at least `perClient` times on average.
        func warmedUp(_ clients: Int, perClient: Int = 2) -> Bool {
            waitUntil(timeout: 30) { requests.get >= clients * perClient || !errors.get.isEmpty }
        }

        func finish() -> Bool {
            stop.withValue { $0 = true }
            return done.wait(timeout: .now() + 60) == .success
        }
    }

    /// Median and maximum, in seconds.
    static func summary(_ waits: [Double]) -> (median: Double, max: Double) {
        let sorted = waits.sorted()
        return (sorted[sorted.count / 2], sorted.last ?? 0)
    }

    static func ms(_ s: Double) -> String { String(format: "%.0f ms", s * 1000) }

    @Test("12 readers of 1 MiB never keep 20 writes out for 2 s; 6 writers never keep a reader out", arguments: cases)
    func noStarvation(backend: String, policy: String) throws {
        try withScope { scope in
            let options = ["--coordinator", policy]
            let a = try scope.start(backend, mailboxes: 2, mailboxKB: 1024, packetKB: 64, options: options)
            let b = try scope.start(backend, mailboxes: 2, mailboxKB: 1024, packetKB: 64, options: options)
            var g = SplitMix64()
            let values = (0..<2).map { _ in CheckedValue.make(length: FairnessTests.valueSize, using: &g) }
            try a.connect().write(0, values[0])

            // 12 readers of 1 MiB across both servers; 20 writes, alternating servers.
            let readers = Stream(clients: 12, servers: [a, b]) { c, _ in _ = try c.read(0) }
            #expect(readers.warmedUp(12), "readers did not get going: \(readers.errors.get)")
            let writers = try [a.connect(timeout: 30), b.connect(timeout: 30)]
            var writeWaits: [Double] = []
            let readsBefore = readers.requests.get
            for i in 0..<FairnessTests.measured {
                let start = monotonicNow()
                try writers[i % 2].write(0, values[i % 2])
                writeWaits.append(monotonicNow() - start)
            }
            let readsDuring = readers.requests.get - readsBefore
            #expect(readers.finish())
            #expect(readers.errors.get.isEmpty, "\(readers.errors.get)")

            // 6 writers of 1 MiB across both servers; 20 reads, alternating servers.
            let writerStream = Stream(clients: 6, servers: [a, b]) { c, n in try c.write(0, values[n % 2]) }
            #expect(writerStream.warmedUp(6), "writers did not get going: \(writerStream.errors.get)")
            let readerConns = try [a.connect(timeout: 30), b.connect(timeout: 30)]
            var readWaits: [Double] = []
            var lastRead: [UInt8] = []
            for i in 0..<FairnessTests.measured {
                let start = monotonicNow()
                lastRead = try readerConns[i % 2].read(0).data
                readWaits.append(monotonicNow() - start)
            }
            #expect(writerStream.finish())
            #expect(writerStream.errors.get.isEmpty, "\(writerStream.errors.get)")
            #expect(lastRead.count == FairnessTests.valueSize && CheckedValue.problem(lastRead) == nil)

            let w = FairnessTests.summary(writeWaits)
            let r = FairnessTests.summary(readWaits)
            print("fairness \(backend) \(policy): 20 writes under 12 readers: median \(FairnessTests.ms(w.median)), max \(FairnessTests.ms(w.max)) (\(readsDuring) reads meanwhile); 20 reads under 6 writers: median \(FairnessTests.ms(r.median)), max \(FairnessTests.ms(r.max))")
            #expect(w.max < FairnessTests.bound, "\(backend)/\(policy): a write waited \(w.max) s: \(writeWaits)")
            #expect(r.max < FairnessTests.bound, "\(backend)/\(policy): a read waited \(r.max) s: \(readWaits)")
        }
    }
}
