import Atomics
import DIPCCore

/// Counters since the server started, reported by `s`. Safe to update from any thread.
final class ServerStatistics: Sendable {
    let connections = ManagedAtomic<Int>(0)
    let accepted = ManagedAtomic<Int>(0)
    let rejected = ManagedAtomic<Int>(0)
    let reads = ManagedAtomic<Int>(0)
    let writes = ManagedAtomic<Int>(0)
    let pushes = ManagedAtomic<Int>(0)
    let takes = ManagedAtomic<Int>(0)
    let errors = ManagedAtomic<Int>(0)
    let bytesIn = ManagedAtomic<Int>(0)
    let bytesOut = ManagedAtomic<Int>(0)
    let startedAt = monotonicSeconds()

    /// The `KEY=VALUE` pairs of the `s` reply.
    func snapshot() -> [(String, String)] {
        [
            ("connections", connections), ("accepted", accepted), ("rejected", rejected),
            ("reads", reads), ("writes", writes), ("pushes", pushes), ("takes", takes),
            ("errors", errors), ("bytes_in", bytesIn), ("bytes_out", bytesOut),
        ].map { ($0.0, String($0.1.load(ordering: .relaxed))) }
            + [("uptime_s", String(Int(monotonicSeconds() - startedAt)))]
    }
}

extension ManagedAtomic where Value == Int {
    func add(_ amount: Int) { wrappingIncrement(by: amount, ordering: .relaxed) }
}
