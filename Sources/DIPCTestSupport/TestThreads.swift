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
