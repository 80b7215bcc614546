import DIPCCore
import Glibc

/// Plain pthreads for tests and benchmarks that must not block Swift's cooperative
/// pool (and must not start threads from closures inferred `@MainActor`).
public enum TestThreads {
    fileprivate final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// Runs `body(0..<count)` on `count` new threads and returns when all have finished.
    public static func run(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        var threads: [pthread_t] = []
        for index in 0..<count {
            let box = Unmanaged.passRetained(Box { body(index) }).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
            precondition(rc == 0, "pthread_create failed: \(rc)")
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
    }
}

extension TestThreads {
    /// One slot per thread, written once under a pthread mutex (visible to
    /// ThreadSanitizer) and read after every thread was joined.
    private final class Results<T>: @unchecked Sendable {
        private var values: [T?]
        private var lock = pthread_mutex_t()
        init(_ count: Int) {
            values = Array(repeating: nil, count: count)
            pthread_mutex_init(&lock, nil)
        }
        deinit { pthread_mutex_destroy(&lock) }
        func set(_ index: Int, _ value: T) {
            pthread_mutex_lock(&lock)
            values[index] = value
            pthread_mutex_unlock(&lock)
        }
        var all: [T] { values.map { $0! } }
    }

    /// Runs `body(i)` for i in 0..<count on `count` new threads and returns their
    /// results in index order once all have finished.
    public static func collect<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let results = Results<T>(count)
        run(count) { index in results.set(index, body(index)) }
        return results.all
    }
}

extension TestThreads {
    /// Runs `body` on a new thread and resumes with its result, so that an async test
    /// waiting for blocking work (locks, joins) does not hold a thread of the pool.
    public static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let box = Unmanaged.passRetained(Box {
                do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
            }).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
                box.body()
                return nil
            }, box)
            if rc != 0 {
                Unmanaged<Box>.fromOpaque(box).release()
                continuation.resume(throwing: SystemError("pthread_create", errno: rc))
                return
            }
            pthread_detach(thread)
        }
    }
}
