import CoreMetrics
import DIPCCore
import DIPCProtocol
import Glibc
import Prometheus
import Synchronization

/// What one server exports on `--metrics` (docs/OPERATIONS.md "Monitoring" lists every
/// metric): swift-metrics handles over a Prometheus registry of this server's own.
///
/// Every handle is made once, here; the request path only increments or records through
/// them (an atomic add, or one short lock for a histogram). Figures `ServerStatistics`
/// already counts for `s` (connections, bytes) are not counted again: `render` brings
/// the Prometheus counters up to them at each scrape.
///
/// Thread-safe.
final class ServerMetrics: Sendable {
    /// The request kinds of the labels `kind="…"`.
    enum RequestKind: Int, CaseIterable, Sendable {
        case read, watch, write, push, take, info, stats, quit, authenticate

        var label: String { "\(self)" }

        init(_ request: Request) {
            switch request {
            case .read: self = .read
            case .watch: self = .watch
            case .write: self = .write
            case .push: self = .push
            case .consume: self = .take
            case .info: self = .info
            case .stats: self = .stats
            case .quit: self = .quit
            case .authenticate: self = .authenticate
            }
        }
    }

    /// Upper bounds, in seconds, of the latency histograms' buckets: 10 µs (a read on
    /// loopback takes about that) to 10 s (longer waits of `c`/`p`/watches end in `+Inf`).
    static let latencyBucketSeconds: [Double] = [
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    /// The same bounds for the swift-metrics timers that the backends record.
    static let latencyBuckets: [Duration] = latencyBucketSeconds.map { .nanoseconds(Int64(($0 * 1e9).rounded())) }

    /// The registry `render` formats.
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    private let requests: [CoreMetrics.Counter]
    /// Seconds, as `Double`: a recorder's histogram compares plain doubles, where a
    /// timer's compares `Duration`s through calls into the runtime (about 750 more
    /// instructions per request under callgrind, of some 3,200).
    private let latencies: [CoreMetrics.Recorder]
    private let waiting: [CoreMetrics.Meter]
    private let errors: [CoreMetrics.Counter]

    // Brought up to `ServerStatistics` at each scrape.
    private let accepted: CoreMetrics.Counter
    private let rejected: CoreMetrics.Counter
    private let bytesIn: CoreMetrics.Counter
    private let bytesOut: CoreMetrics.Counter
    private let connections: CoreMetrics.Gauge
    private let stagingReserved: CoreMetrics.Gauge
    private let stagingCapacity: CoreMetrics.Gauge
    private let uptime: CoreMetrics.Gauge
    private let scrapes: CoreMetrics.Counter
    /// What the counters above were last brought up to (accepted, rejected, in, out).
    private let exported = Mutex<[Int]>([0, 0, 0, 0])

    init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = ServerMetrics.latencyBuckets
        factory.valueHistogramBuckets["dipc_request_duration_seconds"] = ServerMetrics.latencyBucketSeconds
        self.factory = factory
        requests = RequestKind.allCases.map {
            CoreMetrics.Counter(label: "dipc_requests_total", dimensions: [("kind", $0.label)], factory: factory)
        }
        latencies = RequestKind.allCases.map {
            CoreMetrics.Recorder(label: "dipc_request_duration_seconds", dimensions: [("kind", $0.label)], aggregate: true,
                                 factory: factory)
        }
        waiting = [RequestKind.watch, .push, .take].map {
            CoreMetrics.Meter(label: "dipc_waiting_requests", dimensions: [("kind", $0.label)], factory: factory)
        }
        errors = ErrorCode.allCases.map {
            CoreMetrics.Counter(label: "dipc_errors_total", dimensions: [("code", $0.rawValue)], factory: factory)
        }
        accepted = CoreMetrics.Counter(label: "dipc_connections_accepted_total", factory: factory)
        rejected = CoreMetrics.Counter(label: "dipc_connections_rejected_total", factory: factory)
        bytesIn = CoreMetrics.Counter(label: "dipc_received_bytes_total", factory: factory)
        bytesOut = CoreMetrics.Counter(label: "dipc_sent_bytes_total", factory: factory)
        connections = CoreMetrics.Gauge(label: "dipc_connections", factory: factory)
        stagingReserved = CoreMetrics.Gauge(label: "dipc_staging_bytes", factory: factory)
        stagingCapacity = CoreMetrics.Gauge(label: "dipc_staging_capacity_bytes", factory: factory)
        uptime = CoreMetrics.Gauge(label: "dipc_uptime_seconds", factory: factory)
        scrapes = CoreMetrics.Counter(label: "dipc_metrics_scrapes_total", factory: factory)
    }

    /// Counts a request of `kind` whose reply was queued `nanoseconds` after the arrival
    /// of its last byte (whatever its outcome: an `err` reply counts too).
    func requestAnswered(_ kind: RequestKind, nanoseconds: Int64) {
        requests[kind.rawValue].increment()
        latencies[kind.rawValue].record(Double(nanoseconds) / 1e9)
    }

    /// Counts an `err CODE` reply sent.
    func errorSent(_ code: ErrorCode) {
        errors[ServerMetrics.errorIndex[code] ?? 0].increment()
    }

    private static let errorIndex: [ErrorCode: Int] = Dictionary(
        uniqueKeysWithValues: ErrorCode.allCases.enumerated().map { ($0.element, $0.offset) })

    /// The gauge of requests of `kind` now waiting (watch, push, take), or nil for a
    /// kind that never waits.
    func waitingGauge(_ kind: RequestKind) -> CoreMetrics.Meter? {
        switch kind {
        case .watch: return waiting[0]
        case .push: return waiting[1]
        case .take: return waiting[2]
        default: return nil
        }
    }

    /// The exposition page: the registry in Prometheus's text format, after bringing the
    /// scrape-time figures up to date from `statistics` and `staging`.
    func render(statistics: ServerStatistics, staging: StagingBudget) -> [UInt8] {
        scrapes.increment()
        let now = [statistics.accepted, statistics.rejected, statistics.bytesIn, statistics.bytesOut]
            .map { $0.load(ordering: .relaxed) }
        let counters = [accepted, rejected, bytesIn, bytesOut]
        exported.withLock { last in
            for index in now.indices where now[index] > last[index] {
                counters[index].increment(by: now[index] - last[index])
                last[index] = now[index]
            }
        }
        connections.record(statistics.connections.load(ordering: .relaxed))
        stagingReserved.record(staging.reservedBytes)
        stagingCapacity.record(staging.capacity)
        uptime.record(monotonicSeconds() - statistics.startedAt)
        return registry.emitToBuffer()
    }

    /// Points the process's global swift-metrics factory at this server's registry, once
    /// per process (swift-metrics allows one bootstrap; later servers in the same process
    /// keep the first one's), so that the backends' figures — coordinator waits, tdb
    /// transactions — appear on the same page. Call before the store is opened.
    func bootstrapProcessMetrics() {
        ServerMetrics.bootstrapped.withLock { done in
            guard !done else { return }
            MetricsSystem.bootstrap(factory)
            done = true
        }
        CoordinatorMetrics.prepare()
    }

    private static let bootstrapped = Mutex(false)
}

/// Nanoseconds on the monotonic clock, for request latencies.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    // CLOCK_MONOTONIC always exists on Linux: a failure is a bug.
    precondition(clock_gettime(CLOCK_MONOTONIC, &now) == 0, "clock_gettime(CLOCK_MONOTONIC) failed")
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
