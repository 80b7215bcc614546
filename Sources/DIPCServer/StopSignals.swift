@preconcurrency import Glibc
import DIPCCore

/// The signals that stop the server gracefully: SIGTERM, SIGINT, SIGHUP (terminal gone)
/// and SIGQUIT. They are blocked before any thread starts (every later thread inherits
/// the mask) and taken with `sigwait` by the launcher's thread only.
struct StopSignals {
    private var set = sigset_t()

    init() {
        sigemptyset(&set)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT] { sigaddset(&set, signal) }
    }

    /// Blocks the signals in the calling thread (and so in every thread it starts later).
    /// They stay blocked through the shutdown: a second signal cannot cut it short.
    func block() {
        var set = set
        // Fails only for an invalid `how`, which SIG_BLOCK is not.
        errnoReturningCallOrTrap("pthread_sigmask") { pthread_sigmask(SIG_BLOCK, &set, nil) }
    }

    /// Waits for one of the signals and returns it.
    func wait() -> Int32 {
        var set = set
        var received: Int32 = 0
        // glibc's sigwait fails only with EINVAL (a bad set); it never returns EINTR.
        errnoReturningCallOrTrap("sigwait") { sigwait(&set, &received) }
        return received
    }
}
