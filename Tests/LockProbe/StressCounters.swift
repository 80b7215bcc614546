import Glibc
import Synchronization

import DIPCCore

/// Exclusion counters in shared memory, used by the probe's `stress` mode and by the
/// coordinator tests (this file is compiled into both). Layout: four `Atomic<Int>`
/// (readers inside, writers inside, violations, writes) after the coordinator region.
struct StressCounters: @unchecked Sendable {
    static let size = 64
    let base: UnsafeMutablePointer<Atomic<Int>>

    init(at raw: UnsafeMutableRawPointer) {
        base = raw.assumingMemoryBound(to: Atomic<Int>.self)
    }

    var violations: Int { base[2].load(ordering: .sequentiallyConsistent) }
    var writes: Int { base[3].load(ordering: .sequentiallyConsistent) }

    /// One write or read access that checks nobody else is inside against it.
    func access(_ coordinator: Coordinator, mailbox: Int, write: Bool, yieldInside: Bool = false) throws {
        let readers = base, writers = base + 1, violations = base + 2, writes = base + 3
        if write {
            try coordinator.withWriteAccess(to: mailbox) {
                if writers.pointee.add(1, ordering: .sequentiallyConsistent).newValue != 1
                    || readers.pointee.load(ordering: .sequentiallyConsistent) != 0
                {
                    violations.pointee.add(1, ordering: .sequentiallyConsistent)
                }
                writes.pointee.add(1, ordering: .sequentiallyConsistent)
                if yieldInside { sched_yield() }
                writers.pointee.subtract(1, ordering: .sequentiallyConsistent)
            }
        } else {
            try coordinator.withReadAccess(to: mailbox) {
                readers.pointee.add(1, ordering: .sequentiallyConsistent)
                if writers.pointee.load(ordering: .sequentiallyConsistent) != 0 {
                    violations.pointee.add(1, ordering: .sequentiallyConsistent)
                }
                if yieldInside { sched_yield() }
                readers.pointee.subtract(1, ordering: .sequentiallyConsistent)
            }
        }
    }

    /// Runs `threads` pthreads of `operations` accesses each (one in four a write; every eighth yields the CPU inside the lock)
    /// and returns when all are done.
    static func hammer(_ coordinator: Coordinator, mailbox: Int, counters: StressCounters, threads: Int, operations: Int) {
        final class Job {
            let run: () -> Void
            init(_ run: @escaping () -> Void) { self.run = run }
        }
        var ids: [pthread_t] = []
        for index in 0..<threads {
            let job = Job {
                for op in 0..<operations {
                    try? counters.access(
                        coordinator, mailbox: mailbox, write: (op + index) % 4 == 0, yieldInside: op % 8 == 0)
                }
            }
            var id = pthread_t()
            let rc = pthread_create(
                &id, nil,
                { raw in
                    Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
                    return nil
                }, Unmanaged.passRetained(job).toOpaque())
            precondition(rc == 0, "pthread_create: \(rc)")
            ids.append(id)
        }
        for id in ids { pthread_join(id, nil) }
    }
}
