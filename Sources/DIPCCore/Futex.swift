import CDIPCShims
import Glibc

/// Wait and wake on a 32-bit word that may live in memory shared between processes.
public enum Futex {
    /// Blocks while `*word == expected`, for at most `timeoutNanoseconds` (negative:
    /// no limit). Returns when woken, when the value differs, on timeout or on a
    /// signal; callers re-check their condition in every case.
    public static func wait(_ word: UnsafeMutablePointer<UInt32>, expected: UInt32, timeoutNanoseconds: Int64) {
        // Every outcome is an answer here: woken (0), value already differed (EAGAIN),
        // timed out (ETIMEDOUT) or interrupted (EINTR) all send the caller back to its
        // condition; the remaining errors (EFAULT, EINVAL) would be a bug in the word's address.
        let result = cdipc_futex_wait(word, expected, timeoutNanoseconds)
        if result != 0 {
            let code = Errno.current
            precondition([.wouldBlock, .timedOut, .interrupted].contains(code), "\(SystemError("futex(FUTEX_WAIT)", errno: code))")
        }
    }

    /// Wakes every waiter on `word`, in any process.
    public static func wakeAll(_ word: UnsafeMutablePointer<UInt32>) {
        // Returns how many it woke, which nobody needs; it fails only for a bad address (a bug).
        let result = cdipc_futex_wake(word, Int32.max)
        precondition(result >= 0, "\(SystemError.last("futex(FUTEX_WAKE)"))")
    }
}
