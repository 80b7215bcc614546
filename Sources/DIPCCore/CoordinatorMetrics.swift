import CoreMetrics

/// The coordinator's figures for `dipc --metrics`, recorded through the process's global
/// swift-metrics factory (a no-op unless the server bootstrapped one):
/// `dipc_coordinator_wait_seconds{lock="read|write"}`, the time an access that could
/// not enter at once waited for its lock, from its arrival to its entry. An access that
/// enters at once records nothing, so the uncontended path costs nothing more.
public enum CoordinatorMetrics {
    static let readWaits = CoreMetrics.Timer(label: "dipc_coordinator_wait_seconds", dimensions: [("lock", "read")])
    static let writeWaits = CoreMetrics.Timer(label: "dipc_coordinator_wait_seconds", dimensions: [("lock", "write")])

    /// Makes the handles now, so that the series exist (at zero) from start-up; call
    /// after bootstrapping the factory.
    public static func prepare() {
        _ = (readWaits, writeWaits)
    }

    /// Records a wait of an access (`exclusive`: a write lock) that arrived at `arrival`
    /// (monotonic nanoseconds) and has just entered.
    static func recordWait(exclusive: Bool, since arrival: Int64) {
        (exclusive ? writeWaits : readWaits).recordNanoseconds(monotonicNanoseconds() - arrival)
    }
}
