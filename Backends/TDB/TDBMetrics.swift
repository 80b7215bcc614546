import CoreMetrics
import Glibc

/// The tdb backend's figure for `dipc --metrics`, recorded through the process's global
/// swift-metrics factory (a no-op unless the server bootstrapped one):
/// `dipc_tdb_transaction_seconds`, each committed transaction from its start to the end
/// of its commit (with `--sync`, its fsyncs included). The series appears with the
/// first commit.
enum TDBMetrics {
    static let commits = CoreMetrics.Timer(label: "dipc_tdb_transaction_seconds")

    /// Monotonic nanoseconds.
    static func now() -> Int64 {
        var time = timespec()
        // CLOCK_MONOTONIC always exists on Linux: a failure is a bug.
        precondition(clock_gettime(CLOCK_MONOTONIC, &time) == 0, "clock_gettime(CLOCK_MONOTONIC) failed")
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Records a transaction started at `start` (`now()`) and committed just now.
    static func recordCommit(since start: Int64) {
        commits.recordNanoseconds(now() - start)
    }
}
