import Glibc

/// A process-shared, robust `pthread_mutex_t` that lives in shared memory.
///
/// Contract: `initialize` is called once, by the process that creates the shared
/// region, before any other process maps it. `lock` returns `.ownerDied` when the
/// previous holder died holding it; the caller then holds the mutex, must repair
/// the state it protects, and call `markConsistent` before `unlock` (otherwise the
/// mutex becomes unusable for everyone).
public struct RobustMutex {
    /// Bytes reserved for the mutex; callers place it at a 64-byte-aligned offset.
    public static let reservedSize = 64

    public enum LockOutcome: Sendable {
        case acquired
        case ownerDied
    }

    public let pointer: UnsafeMutablePointer<pthread_mutex_t>

    public init(at raw: UnsafeMutableRawPointer) {
        precondition(MemoryLayout<pthread_mutex_t>.size <= RobustMutex.reservedSize)
        pointer = raw.bindMemory(to: pthread_mutex_t.self, capacity: 1)
    }

    /// Initialises a new process-shared robust mutex at this address.
    public func initialize() throws {
        var attr = pthread_mutexattr_t()
        try errnoReturningCall("pthread_mutexattr_init") { pthread_mutexattr_init(&attr) }
        defer { errnoReturningCallOrTrap("pthread_mutexattr_destroy") { pthread_mutexattr_destroy(&attr) } }
        try errnoReturningCall("pthread_mutexattr_setpshared") {
            pthread_mutexattr_setpshared(&attr, Int32(PTHREAD_PROCESS_SHARED))
        }
        try errnoReturningCall("pthread_mutexattr_setrobust") {
            pthread_mutexattr_setrobust(&attr, Int32(PTHREAD_MUTEX_ROBUST))
        }
        try errnoReturningCall("pthread_mutex_init") { pthread_mutex_init(pointer, &attr) }
    }

    /// Locks the mutex. Throws only for an unrecoverable mutex (a bug or a corrupt region).
    public func lock() throws -> LockOutcome {
        let rc = pthread_mutex_lock(pointer)
        switch rc {
        case 0: return .acquired
        case EOWNERDEAD: return .ownerDied
        default: throw SystemError("pthread_mutex_lock", errno: rc)
        }
    }

    /// Declares the state repaired after `.ownerDied`. Call it only while holding the
    /// mutex after `.ownerDied`; anything else is a bug and traps.
    public func markConsistent() {
        errnoReturningCallOrTrap("pthread_mutex_consistent") { pthread_mutex_consistent(pointer) }
    }

    /// Unlocks the mutex, which this thread must hold (anything else is a bug and traps).
    public func unlock() {
        errnoReturningCallOrTrap("pthread_mutex_unlock") { pthread_mutex_unlock(pointer) }
    }
}
