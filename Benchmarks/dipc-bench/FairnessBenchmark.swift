@preconcurrency import Glibc
import ArgumentParser
import DIPCCore
import Synchronization
import DIPCTestSupport

/// `dipc-bench fairness`: how long readers and writers wait for one contended lock
/// under `fifo`, `phase-fair`, and an unfair baseline (glibc's process-shared
/// `pthread_rwlock` with its default reader preference — kept only here).
struct FairnessBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fairness",
        abstract: "Wait distributions (p50/p99/max) of readers and writers under fifo, phase-fair and pthread_rwlock.",
        discussion: """
            Reader and writer threads hammer one lock in a tight loop for --seconds: a reader copies \
            --hold-bytes out of shared memory under the read lock, a writer copies them in under the \
            write lock. The wait is the time from asking for the lock to holding it. A request still \
            waiting when the time is up is measured when it gets in (readers and writers stop asking \
            at the deadline), so a starved writer shows as a wait as long as the run.
            """)

    @Option(help: "Seconds measured per lock.") var seconds: Double = 2
    @Option(help: "Reader threads.") var readers: Int = 8
    @Option(help: "Writer threads.") var writers: Int = 2
    @Option(help: "Bytes copied while holding the lock.") var holdBytes: Int = 65536

    func validate() throws {
        guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
        guard readers >= 0, writers >= 0, readers + writers > 0 else {
            throw ValidationError("--readers and --writers must be non-negative, not both 0")
        }
        guard holdBytes > 0, holdBytes <= 64 << 20 else { throw ValidationError("--hold-bytes must be in 1...64 MiB") }
    }

    func run() throws {
        Interruption.install()
        print("## dipc-bench fairness")
        print()
        print("Machine: \(Machine.describe())")
        print("Workload: \(readers) readers and \(writers) writers on one lock in a tight loop, "
              + "\(sizeLabel(holdBytes)) copied under each hold, \(seconds) s per lock, in one process "
              + "(the coordinator's state in shared memory, as between servers). Waits in µs.")
        print()
        var rows: [[String]] = []
        for lock in FairnessLock.Kind.allCases {
            if Interruption.requested { break }
            let lock = try FairnessLock(lock)
            defer { lock.destroy() }
            let result = measure(lock)
            let r = result.readers, w = result.writers
            rows.append([
                lock.kind.label,
                grouped(Double(r.count) / seconds), micros(r.quantileMicroseconds(0.5)),
                micros(r.quantileMicroseconds(0.99)), micros(r.quantileMicroseconds(1)),
                grouped(Double(w.count) / seconds), micros(w.quantileMicroseconds(0.5)),
                micros(w.quantileMicroseconds(0.99)), micros(w.quantileMicroseconds(1)),
            ])
        }
        printTable(
            ["lock", "reads/s", "read p50", "read p99", "read max", "writes/s", "write p50", "write p99", "write max"],
            rows, rightAligned: Set(1...8))
    }

    /// Runs the workload on `lock`; the waits of every reader and every writer.
    func measure(_ lock: FairnessLock) -> (readers: Latencies, writers: Latencies) {
        let gate = StartGate(parties: readers + writers, seconds: seconds)
        let readers = self.readers, holdBytes = self.holdBytes
        let results = TestThreads.collect(readers + writers) { index -> Latencies in
            let isWriter = index >= readers
            let local = UnsafeMutableRawPointer.allocate(byteCount: holdBytes, alignment: 64)
            defer { local.deallocate() }
            local.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: index), count: holdBytes)
            var waits = Latencies(reserving: 1 << 16)
            let deadline = gate.arriveAndWait()
            while now() < deadline && !Interruption.requested {
                let asked = nowNanoseconds()
                if isWriter {
                    lock.withWriteLock {
                        waits.add(nowNanoseconds() - asked)
                        lock.shared.copyMemory(from: local, byteCount: holdBytes)
                    }
                } else {
                    lock.withReadLock {
                        waits.add(nowNanoseconds() - asked)
                        local.copyMemory(from: lock.shared, byteCount: holdBytes)
                    }
                }
            }
            return waits
        }
        var readerWaits = Latencies(), writerWaits = Latencies()
        for (index, waits) in results.enumerated() {
            if index >= readers { writerWaits.merge(waits) } else { readerWaits.merge(waits) }
        }
        return (readerWaits, writerWaits)
    }
}

/// One readers-writer lock in a shared anonymous mapping, with the data it guards.
final class FairnessLock: @unchecked Sendable {
    enum Kind: CaseIterable {
        case fifo, phaseFair, pthreadRWLock

        var label: String {
            switch self {
            case .fifo: return "fifo"
            case .phaseFair: return "phase-fair"
            case .pthreadRWLock: return "pthread_rwlock (glibc default, unfair)"
            }
        }
    }

    let kind: Kind
    private let mapping: UnsafeMutableRawPointer
    private let mappingSize: Int
    private let coordinator: Coordinator?
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>
    /// The guarded bytes (64 MiB at most).
    let shared: UnsafeMutableRawPointer

    static let dataOffset = 4096

    init(_ kind: Kind) throws {
        self.kind = kind
        mappingSize = Self.dataOffset + 64 << 20
        guard let p = mmap(nil, mappingSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
        else { throw BenchError("mmap: errno \(errno)") }
        mapping = p
        shared = p + Self.dataOffset
        rwlock = (p + Coordinator.regionSize(mailboxes: 1)).bindMemory(to: pthread_rwlock_t.self, capacity: 1)
        switch kind {
        case .fifo, .phaseFair:
            try Coordinator.initializeRegion(p, mailboxes: 1)
            coordinator = Coordinator(
                region: p, mailboxes: 1, policy: kind == .fifo ? .fifo : .phaseFair, slot: 0, isSlotAlive: { _ in true })
        case .pthreadRWLock:
            coordinator = nil
            var attributes = pthread_rwlockattr_t()
            pthread_rwlockattr_init(&attributes)
            defer { pthread_rwlockattr_destroy(&attributes) }
            pthread_rwlockattr_setpshared(&attributes, Int32(PTHREAD_PROCESS_SHARED))
            let rc = pthread_rwlock_init(rwlock, &attributes)
            guard rc == 0 else { throw BenchError("pthread_rwlock_init: errno \(rc)") }
        }
    }

    func withReadLock(_ body: () -> Void) {
        if let coordinator {
            _ = try? coordinator.withReadAccess(to: 0, body)
        } else {
            pthread_rwlock_rdlock(rwlock)
            body()
            pthread_rwlock_unlock(rwlock)
        }
    }

    func withWriteLock(_ body: () -> Void) {
        if let coordinator {
            _ = try? coordinator.withWriteAccess(to: 0, body)
        } else {
            pthread_rwlock_wrlock(rwlock)
            body()
            pthread_rwlock_unlock(rwlock)
        }
    }

    func destroy() {
        if kind == .pthreadRWLock { pthread_rwlock_destroy(rwlock) }
        munmap(mapping, mappingSize)
    }
}
