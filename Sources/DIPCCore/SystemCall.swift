import Glibc

// The one way DIPC makes a system call (after apple/swift-nio's NIOPosix `syscall`):
// every result is checked, `EINTR` is retried, and any other failure is thrown as a
// `SystemError` naming the call and its `Errno`. A caller that expects a particular
// failure catches it by name:
//
//     do { try systemCall("flock") { flock(fd, LOCK_SH | LOCK_NB) } }
//     catch let error as SystemError where error.errno == .wouldBlock { ... }
//
// Calls that return their error number instead of setting errno (pthread_*,
// posix_spawn, posix_fallocate) go through `errnoReturningCall`, or
// `errnoReturningCallOrTrap` where only a bug could make them fail. A call whose
// failure is harmless goes through `ignoringFailure` (with the reason) or
// `closeDescriptor`, never a bare `_ =`.

/// Runs `body`, a call that returns -1 and sets `errno` on failure, retrying on
/// `EINTR`; returns its result, or throws `SystemError(call, errno:)`.
@inlinable
@discardableResult
public func systemCall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno.current
        if code == .interrupted { continue }
        throw SystemError(call(), errno: code)
    }
}

/// Runs `body`, a call that returns 0 or an error number instead of setting `errno`
/// (the pthread functions, posix_spawn, posix_fallocate), retrying on `EINTR`; throws
/// `SystemError(call, errno:)` for any other non-zero result.
@inlinable
public func errnoReturningCall(_ call: @autoclosure () -> String, _ body: () -> Int32) throws {
    while true {
        let code = body()
        if code == 0 { return }
        if code == EINTR { continue }
        throw SystemError(call(), errno: code)
    }
}

/// Runs `body` once and deliberately ignores its result: for a call whose failure
/// changes nothing the caller could act on. `reason` states why at the call site (it
/// is documentation; nothing reads it at run time).
@inlinable
public func ignoringFailure<T>(_ reason: StaticString, _ body: () -> T) {
    _ = body()
}

/// Closes `fd`, ignoring any failure: Linux releases the descriptor even when close
/// reports an error (EINTR included), so a retry could close a descriptor another
/// thread has just been given, and there is nothing else to do about it. Callers whose
/// data must have reached the file check `fsync` (or the write) instead.
@inlinable
public func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

/// Runs `body`, a call returning 0 or an error number that can fail only through a bug
/// in DIPC (unlocking a mutex this thread does not hold, repairing a mutex that is not
/// inconsistent) or a corrupted object; traps naming the call and its errno, since
/// carrying on would break the very invariant the call maintains.
@inlinable
public func errnoReturningCallOrTrap(_ call: @autoclosure () -> String, _ body: () -> Int32) {
    let code = body()
    precondition(code == 0, "\(SystemError(call(), errno: code))")
}
