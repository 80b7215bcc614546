import CoreMetrics
import DIPCCore

/// The etcd backend's figures for `dipc --metrics`, recorded through the process's
/// global swift-metrics factory (a no-op unless the server bootstrapped one):
/// - `dipc_etcd_round_trip_seconds{call}`: each HTTP round trip to one endpoint
///   (answered or failed), by gateway call (`/v3/kv/range`, `/v3/kv/txn`, ...);
/// - `dipc_etcd_retries_total`: each round trip after the first within one request to
///   etcd (another endpoint, or the same one again, after a failure).
/// The series appear with their first record.
enum EtcdMetrics {
    static let retries = CoreMetrics.Counter(label: "dipc_etcd_retries_total")

    /// Records a round trip on `path` that began at `start` (`monotonicSeconds()`).
    static func recordRoundTrip(_ path: String, since start: Double) {
        CoreMetrics.Timer(label: "dipc_etcd_round_trip_seconds", dimensions: [("call", path)])
            .recordNanoseconds(Int64((monotonicSeconds() - start) * 1e9))
    }
}
