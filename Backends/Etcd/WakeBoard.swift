import DIPCCore
import Foundation

/// Per-mailbox change counters that waiting requests sleep on: the watch stream bumps a
/// mailbox's counter for every event on its list or its lines, and every counter at
/// once (`bumpAll`) when the stream was (re)established, since changes made while it was
/// down were not seen.
///
/// A waiter takes `mark(m)` before it reads etcd and sleeps in `wait(m, since:)`: a
/// change after its read bumps the counter after the mark, so it is never missed.
final class WakeBoard: @unchecked Sendable {
    private let condition = NSCondition()
    private var epoch: UInt64 = 0
    private var counters: [Int: UInt64] = [:]

    func mark(_ m: Int) -> UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return epoch &+ (counters[m] ?? 0)
    }

    func bump(_ mailboxes: Set<Int>) {
        guard !mailboxes.isEmpty else { return }
        condition.lock()
        for m in mailboxes { counters[m, default: 0] &+= 1 }
        condition.broadcast()
        condition.unlock()
    }

    func bumpAll() {
        condition.lock()
        epoch &+= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Sleeps until mailbox `m`'s counter moves past `mark` or the monotonic time `until`.
    func wait(_ m: Int, since mark: UInt64, until: Double) {
        condition.lock()
        defer { condition.unlock() }
        while epoch &+ (counters[m] ?? 0) == mark {
            let left = until - monotonicSeconds()
            if left <= 0 { return }
            _ = condition.wait(until: Date(timeIntervalSinceNow: left))
        }
    }
}
