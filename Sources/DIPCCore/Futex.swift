import CDIPCShims
import Glibc

/// Wait and wake on a 32-bit word that may live in memory shared between processes.
public enum Futex {
    /// Blocks while `*word == expected`, for at most `timeoutNanoseconds` (negative:
    /// no limit). Returns when woken, when the value differs, on timeout or on a
    /// signal; callers re-check their condition in every case.
    public static func wait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64) {
        _ = cdipc_futex_wait(word, expected, timeoutNanoseconds)
    }

    /// Wakes every waiter on `word`, in any process.
    public static func wakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        _ = cdipc_futex_wake(word, Int32.max)
    }
}
