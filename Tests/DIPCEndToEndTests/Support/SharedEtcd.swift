import DIPCTestSupport
import Foundation

/// The one private etcd the parameterised end-to-end tests run their `--backend etcd`
/// servers on: a single node on free loopback ports, started the first time an etcd
/// server is started in this test process, and SIGKILLed (its data removed) when the
/// process exits, by `EtcdCluster`'s exit handler.
///
/// Servers on it stay apart by their `--name`, which every `Scope` makes unique to the
/// test process (`e2ePIDn…`), so tests can share the node. The stores' keys stay in it
/// until the node goes (SPEC §4: content survives `dipcrm`).
enum SharedEtcd {
    /// The node, or why it could not be started (a failure each etcd test then reports).
    private static let cluster: Result<EtcdCluster, Error> = Result { try EtcdCluster(nodes: 1) }

    /// The `--etcd` value of the shared node, starting it if needed; throws when it could
    /// not be started.
    static func endpoints() throws -> String {
        try cluster.get().endpoints.joined(separator: ",")
    }

    /// `options` with `--etcd URL` of the shared node appended when `backend` is etcd and
    /// `options` names no endpoints of its own; otherwise `options` unchanged.
    static func options(backend: String?, _ options: [String]) throws -> [String] {
        guard backend == "etcd", !options.contains("--etcd") else { return options }
        return options + ["--etcd", try endpoints()]
    }
}
