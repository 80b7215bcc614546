import Foundation

/// Lets a fixed number of threads start together, so that the load they make overlaps
/// rather than depending on how fast each thread happened to be scheduled.
///
/// Contract: each of the `count` threads calls `arriveAndWait` exactly once (also a thread
/// that failed to get ready, so that the others do not wait for it in vain). The call
/// returns the monotonic time at which the last thread arrived, or nil when `timeout`
/// seconds passed before all arrived.
final class StartLine: @unchecked Sendable {
    private let condition = NSCondition()
    private let count: Int
    private var arrived = 0
    private var openedAt: Double?

    init(count: Int) { self.count = count }

    func arriveAndWait(timeout: Double) -> Double? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        arrived += 1
        if arrived == count {
            openedAt = monotonicNow()
            condition.broadcast()
        }
        while openedAt == nil {
            if !condition.wait(until: deadline) { break }
        }
        return openedAt
    }
}
