import DIPCBackends
import DIPCTestSupport
import Foundation

/// The one switch of the end-to-end suite.
enum E2E {
    /// Backends the parameterised tests run against: every registered backend whose
    /// engine is installed (etcd's servers run on `SharedEtcd`, which needs the etcd
    /// binary; without it etcd is skipped, loudly); `DIPC_E2E_BACKENDS=sysv,posix`
    /// narrows it.
    static let builtBackends: [String] = {
        if let env = ProcessInfo.processInfo.environment["DIPC_E2E_BACKENDS"], !env.isEmpty {
            return env.split(separator: ",").map { String($0) }
        }
        if !EtcdCluster.isInstalled {
            FileHandle.standardError.write(Data((
                "SKIPPED: the parameterised end-to-end tests do not run on etcd: /usr/bin/etcd is not installed "
                    + "(Debian package etcd-server; make deps installs it)\n").utf8))
            return BackendRegistry.names.filter { $0 != "etcd" }
        }
        return BackendRegistry.names
    }()

    /// Backends that keep their store in shared memory or files on this host (every one
    /// but etcd): the subjects of tests about IPC objects, /dev/shm files and the
    /// shared-memory coordinator.
    static var hostStoreBackends: [String] { builtBackends.filter { $0 != "etcd" } }

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
