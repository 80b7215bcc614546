import Glibc

/// One plain pthread started now and joined later, for tests that must act while the
/// thread blocks (a waiting take served by a push on the calling thread).
///
/// Contract: every `SpawnedThread` must be joined exactly once (`join()` returns the
/// body's result); the owner joins it on every path, failures included, so that no
/// test leaks a thread. The body should end by itself (every wait with a deadline).
public final class SpawnedThread<T: Sendable>: @unchecked Sendable {
    /// What the thread runs and where it leaves its result (read only after the join,
    /// which orders the write before the read).
    private final class Job {
        let body: () -> T
        var result: T?
        init(_ body: @escaping () -> T) { self.body = body }
    }

    private let job: Job
    private let thread: pthread_t
    private var joined = false

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () -> T) {
        let job = Job(body)
        self.job = job
        thread = Self.start(job)
    }

    private static func start(_ job: Job) -> pthread_t {
        var thread = pthread_t()
        let raw = Unmanaged.passRetained(ThreadEntry { job.result = job.body() }).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadEntry>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, raw)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        return thread
    }

    /// Waits for the thread to end and returns what its body returned.
    public func join() -> T {
        precondition(!joined, "SpawnedThread joined twice")
        joined = true
        pthread_join(thread, nil)
        return job.result!
    }

    deinit {
        precondition(joined, "SpawnedThread released without a join: a leaked thread")
    }
}

/// What a new thread runs (not generic: a C function pointer cannot use generic context).
private final class ThreadEntry {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}
