import DIPCBackends
import Foundation

/// The one switch of the end-to-end suite.
enum E2E {
    /// Backends the parameterised tests run against: every registered backend;
    /// `DIPC_E2E_BACKENDS=sysv,posix` narrows it.
    static let builtBackends: [String] = {
        if let env = ProcessInfo.processInfo.environment["DIPC_E2E_BACKENDS"], !env.isEmpty {
            return env.split(separator: ",").map { String($0) }
        }
        return BackendRegistry.names
    }()

    static var hasTDB: Bool { builtBackends.contains("tdb") }

    /// Deadline for reading one reply from a server.
    static let replyTimeout: Double = 10
    /// Deadline for `dipc` to start (detach and report readiness).
    static let startTimeout: Double = 30
    /// Deadline for `dipcrm` (it may wait up to 5 s for requests in flight).
    static let stopTimeout: Double = 20
    /// Deadline for `dipc-client` runs.
    static let clientTimeout: Double = 15
}
