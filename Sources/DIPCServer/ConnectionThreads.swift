import DIPCCore
import Glibc
import Synchronization

/// A server's connection threads, counted until they have really exited, so that the
/// process's threads stay under `--max-clients` + 32 however fast connections come
/// and go (SPEC §3 "Resources").
///
/// A thread that has finished its connection still exists for a while: the C library
/// and the kernel tear it down after its body returns, and under load (many threads
/// ending at once, contention on the address space) that takes long enough for a
/// connection flood to pile up hundreds of exiting threads behind `--max-clients`.
/// So threads are joinable: one that finishes reports itself, and `start` joins every
/// finished thread first (each join returns once that thread has exited), waiting for
/// one to finish when `limit` threads are still alive.
final class ConnectionThreads: Sendable {
    /// Threads alive at once (running, or finished and not yet joined), at most.
    let limit: Int
    /// What a server adds to `--max-clients` for `limit`: room for threads whose
    /// connection has ended (its slot free) and that are still exiting, so that a new
    /// connection rarely waits for one.
    static let exitingAllowance = 4
    /// How long `start` waits for a thread to finish when `limit` are alive, before it
    /// starts one anyway (only a thread stuck after its connection ended could make it wait).
    static let roomWaitSeconds = 1.0

    private struct State {
        /// Started and not yet joined.
        var alive = 0
        /// Finished their body; to be joined.
        var finished: [pthread_t] = []
    }

    private let state = Mutex(State())

    init(limit: Int) {
        precondition(limit > 0, "a connection thread limit must be positive")
        self.limit = limit
    }

    /// Joins the finished threads, then starts `body` on a new thread named "dipc-conn".
    func start(_ body: @escaping @Sendable () -> Void) throws {
        joinFinished(waitingForRoom: true)
        state.withLock { $0.alive += 1 }
        do {
            _ = try startJoinableThread(name: "dipc-conn") { [self] in
                body()
                let me = pthread_self()
                state.withLock { $0.finished.append(me) }
            }
        } catch {
            state.withLock { $0.alive -= 1 }
            throw error
        }
    }

    /// Joins every thread that has finished its body. With `waitingForRoom`, while
    /// `limit` threads are alive, also waits (at most `roomWaitSeconds`) for one to finish.
    func joinFinished(waitingForRoom: Bool = false) {
        let deadline = monotonicSeconds() + Self.roomWaitSeconds
        while true {
            let (finished, full) = state.withLock { state -> ([pthread_t], Bool) in
                defer { state.finished.removeAll(keepingCapacity: true) }
                return (state.finished, state.alive - state.finished.count >= limit)
            }
            for thread in finished {
                // A finished thread is joinable and joined once: failure is a bug.
                errnoReturningCallOrTrap("pthread_join") { pthread_join(thread, nil) }
            }
            if !finished.isEmpty { state.withLock { $0.alive -= finished.count } }
            guard waitingForRoom, full, monotonicSeconds() < deadline else { return }
            usleep(1_000)
        }
    }
}
