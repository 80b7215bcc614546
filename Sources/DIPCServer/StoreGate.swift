import Atomics
import DIPCCore
import Glibc

/// The one way connection threads enter the store, and the gate the shutdown closes
/// before the store is detached: once `close` has begun no thread enters, and
/// `close` reports whether every thread inside has left.
final class StoreGate: Sendable {
    /// Thrown by `enter` once the gate is closed.
    struct Closed: Error {}

    /// Threads inside `enter`, and whether the gate is closed.
    private let users = ManagedAtomic<Int>(0)
    private let closed = ManagedAtomic<Bool>(false)

    init() {}

    /// Runs `body`, which uses the store; throws `Closed` once `close` has begun.
    func enter<T>(_ body: () throws -> T) throws -> T {
        users.wrappingIncrement(ordering: .sequentiallyConsistent)
        defer { users.wrappingDecrement(ordering: .sequentiallyConsistent) }
        if closed.load(ordering: .sequentiallyConsistent) { throw Closed() }
        return try body()
    }

    /// Closes the gate and waits at most `timeoutSeconds` until no thread is inside.
    /// Returns whether the store is now unused (so that detaching it is safe).
    func close(timeoutSeconds: Double) -> Bool {
        closed.store(true, ordering: .sequentiallyConsistent)
        let deadline = monotonicSeconds() + timeoutSeconds
        while users.load(ordering: .sequentiallyConsistent) > 0 {
            if monotonicSeconds() > deadline { return false }
            usleep(1_000)
        }
        return true
    }
}
