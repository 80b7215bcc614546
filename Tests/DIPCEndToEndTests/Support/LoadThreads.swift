import Foundation

/// Background client threads that keep a server busy, each on its own connection, and
/// account for what they did: a test that measures something "under load" asserts from
/// these counts that the load really ran, instead of trusting that it did.
///
/// Contract: thread `i` connects to `port(i)`, then calls `operation(i, connection)` until
/// `stop` is called or the operation throws. A thread that cannot connect, and an
/// operation that throws, are recorded (never swallowed) in `connectFailures` and
/// `operationErrors`; `completed[i]` counts the operations thread `i` finished.
final class LoadThreads: @unchecked Sendable {
    private let lock = NSCondition()
    private var counts: [Int]
    private var connectProblems: [String] = []
    private var operationProblems: [String] = []
    private var stopRequested = false
    private let done = DispatchGroup()

    init(count: Int, port: @escaping @Sendable (Int) -> Int, timeout: Double = 10,
         operation: @escaping @Sendable (Int, Conn) throws -> Void) {
        counts = [Int](repeating: 0, count: count)
        for i in 0..<count {
            done.enter()
            Thread { [self] in
                defer { done.leave() }
                let conn: Conn
                do {
                    conn = try Conn(port: port(i), timeout: timeout)
                } catch {
                    record { $0.connectProblems.append("load thread \(i): \(error)") }
                    return
                }
                while !isStopped {
                    do {
                        try operation(i, conn)
                    } catch {
                        record { $0.operationProblems.append("load thread \(i) after \($0.counts[i]) operations: \(error)") }
                        return
                    }
                    record { $0.counts[i] += 1 }
                }
            }.start()
        }
    }

    private func record(_ change: (LoadThreads) -> Void) {
        lock.lock()
        change(self)
        lock.broadcast()
        lock.unlock()
    }

    private func read<T>(_ value: (LoadThreads) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return value(self)
    }

    private var isStopped: Bool { read { $0.stopRequested } }

    /// Operations completed so far, per thread.
    var completed: [Int] { read { $0.counts } }
    /// Threads that never got a connection (they did no work).
    var connectFailures: [String] { read { $0.connectProblems } }
    /// Operations that threw (the thread stopped there).
    var operationErrors: [String] { read { $0.operationProblems } }

    /// Waits until every thread completed at least `minimum` operations; false when
    /// `timeout` seconds pass first, or as soon as a thread can no longer get there
    /// (it failed to connect or its operation threw).
    func waitUntilEach(completed minimum: Int, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        lock.lock()
        defer { lock.unlock() }
        while true {
            if counts.allSatisfy({ $0 >= minimum }) { return true }
            if !connectProblems.isEmpty || !operationProblems.isEmpty { return false }
            if !lock.wait(until: deadline) { return counts.allSatisfy { $0 >= minimum } }
        }
    }

    /// Asks every thread to finish its current operation and stop; true when all did
    /// within `timeout` seconds.
    @discardableResult
    func stop(timeout: Double = 10) -> Bool {
        record { $0.stopRequested = true }
        return done.wait(timeout: .now() + timeout) == .success
    }
}
