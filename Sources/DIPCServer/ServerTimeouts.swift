/// Every time limit of a server's start-up and shutdown, in one place.
///
/// The stop limits add up: a stopping server answers idle connections at once, lets
/// requests in flight run for `stopGraceSeconds`, gives connection threads
/// `stopDrainSeconds` more to close, lets final replies' lingering closes finish for at
/// most `lingeringCloseSeconds`, then waits `storeCloseSeconds` for any thread still
/// inside the store before it detaches (or exits without detaching, as a crashed server
/// would). `dipcrm` waits `removerStopSeconds`, longer than all of that together, before
/// it kills the server.
///
/// `--io-timeout` (a stalled request) is an option, not a lifecycle limit: see
/// `ServerConfiguration.ioTimeoutSeconds`.
public struct ServerTimeouts: Sendable, Equatable {
    /// How long the parent of a detaching `dipc` waits for the child to report ready or failed.
    public var readinessSeconds: Double = 60
    /// Requests in flight may take this long to finish once a stop begins.
    public var stopGraceSeconds: Double = 5
    /// After the grace period, how long connection threads and accept loops get to end.
    public var stopDrainSeconds: Double = 0.5
    /// After the drain, how long the store gate waits for threads still inside the store.
    public var storeCloseSeconds: Double = 2
    /// A final reply's lingering close: how long the peer's remaining input is drained after FIN.
    public var lingeringCloseSeconds: Double = 1
    /// How long `dipcrm` waits for a graceful stop before SIGKILL.
    public var removerStopSeconds: Double = 15
    /// How long `dipcrm` waits for a killed server to be gone.
    public var removerKillSeconds: Double = 5

    public init() {}

    /// The limits `dipc` and `dipcrm` use.
    public static let standard = ServerTimeouts()
}
