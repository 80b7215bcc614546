import DIPCCore
import Glibc

/// The memory a server gives to the data of writes and pushes still arriving
/// (`--max-staging-mb`, SPEC §3 "Resources"), shared by all its connections.
///
/// A connection reserves a request's whole data length once its header is decoded and
/// before it reads any of that data, and releases it when the request is done, dropped
/// or its connection closes. A reservation that does not fit waits, in arrival order
/// (a later small request never overtakes an earlier large one, so none starves), until
/// earlier reservations are released. Every reservation is at most `capacity` bytes,
/// which is at least one mailbox, so any single request can proceed on its own.
///
/// The budget counts what connections are about to hold, not what they hold yet: a
/// reserved request's array gets its pages only as its bytes arrive, so resident
/// memory for staged data stays within `capacity` however many clients send at once.
final class StagingBudget: @unchecked Sendable {
    /// Bytes that may be reserved at once.
    let capacity: Int
    /// How often a waiting reservation asks its caller whether to give up.
    static let givingUpCheckSeconds = 0.1

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    // Guarded by `mutex`:
    private var reserved = 0
    /// Tickets of the reservations waiting, oldest first.
    private var waiting: [UInt64] = []
    private var nextTicket: UInt64 = 0

    /// The budget for `--max-staging-mb megabytes` on a store of `mailboxSize`-byte
    /// mailboxes: never less than one mailbox.
    static func capacity(megabytes: Int, mailboxSize: Int) -> Int {
        let (bytes, overflow) = megabytes.multipliedReportingOverflow(by: 1 << 20)
        return max(overflow ? Int.max : bytes, mailboxSize)
    }

    init(capacity: Int) {
        precondition(capacity > 0, "a staging budget needs room")
        self.capacity = capacity
        mutex = .allocate(capacity: 1)
        changed = .allocate(capacity: 1)
        // Default attributes cannot fail but for lack of memory, which traps anyway.
        errnoReturningCallOrTrap("pthread_mutex_init") { pthread_mutex_init(mutex, nil) }
        var attributes = pthread_condattr_t()
        errnoReturningCallOrTrap("pthread_condattr_init") { pthread_condattr_init(&attributes) }
        errnoReturningCallOrTrap("pthread_condattr_setclock") { pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC) }
        errnoReturningCallOrTrap("pthread_cond_init") { pthread_cond_init(changed, &attributes) }
        errnoReturningCallOrTrap("pthread_condattr_destroy") { pthread_condattr_destroy(&attributes) }
    }

    deinit {
        errnoReturningCallOrTrap("pthread_cond_destroy") { pthread_cond_destroy(changed) }
        errnoReturningCallOrTrap("pthread_mutex_destroy") { pthread_mutex_destroy(mutex) }
        changed.deallocate()
        mutex.deallocate()
    }

    /// Bytes reserved now.
    var reservedBytes: Int { locked { reserved } }

    /// Reserves `bytes` (0 ... `capacity`), waiting behind earlier reservations until
    /// they fit. `givingUp` is asked every `givingUpCheckSeconds` while waiting; when it
    /// returns true the wait ends with nothing reserved and `reserve` returns false.
    func reserve(_ bytes: Int, givingUp: () -> Bool) -> Bool {
        precondition(bytes >= 0 && bytes <= capacity, "a reservation of \(bytes) bytes cannot fit a budget of \(capacity)")
        return locked {
            if waiting.isEmpty && reserved + bytes <= capacity {
                reserved += bytes
                return true
            }
            let ticket = nextTicket
            nextTicket += 1
            waiting.append(ticket)
            while true {
                if waiting.first == ticket && reserved + bytes <= capacity {
                    waiting.removeFirst()
                    reserved += bytes
                    // The next in line may fit too.
                    errnoReturningCallOrTrap("pthread_cond_broadcast") { pthread_cond_broadcast(changed) }
                    return true
                }
                waitForChange()
                if givingUp() {
                    waiting.removeAll { $0 == ticket }
                    errnoReturningCallOrTrap("pthread_cond_broadcast") { pthread_cond_broadcast(changed) }
                    return false
                }
            }
        }
    }

    /// Returns `bytes` of an earlier `reserve` to the budget and wakes the waiting.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        locked {
            precondition(bytes <= reserved, "releasing \(bytes) bytes of \(reserved) reserved")
            reserved -= bytes
            if !waiting.isEmpty {
                errnoReturningCallOrTrap("pthread_cond_broadcast") { pthread_cond_broadcast(changed) }
            }
        }
    }

    /// Waits on `changed` (mutex held) for a release, at most `givingUpCheckSeconds`.
    private func waitForChange() {
        var now = timespec()
        // CLOCK_MONOTONIC always exists on Linux: a failure is a bug.
        precondition(clock_gettime(CLOCK_MONOTONIC, &now) == 0, "clock_gettime(CLOCK_MONOTONIC) failed")
        let nanoseconds = Int(now.tv_nsec) + Int(Self.givingUpCheckSeconds * 1e9)
        var until = timespec(tv_sec: now.tv_sec + nanoseconds / 1_000_000_000, tv_nsec: nanoseconds % 1_000_000_000)
        let code = pthread_cond_timedwait(changed, mutex, &until)
        precondition(code == 0 || code == ETIMEDOUT, "\(SystemError("pthread_cond_timedwait", errno: code))")
    }

    private func locked<T>(_ body: () -> T) -> T {
        errnoReturningCallOrTrap("pthread_mutex_lock") { pthread_mutex_lock(mutex) }
        defer { errnoReturningCallOrTrap("pthread_mutex_unlock") { pthread_mutex_unlock(mutex) } }
        return body()
    }
}
