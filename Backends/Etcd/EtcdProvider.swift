import ArgumentParser
import DIPCBackendProvider
import DIPCCore
import Glibc
import Synchronization

/// `--backend etcd`: the mailboxes live in an etcd cluster (`--etcd URLS`), shared by
/// servers on any number of hosts (SPEC §4). A self-coordinating backend: `EtcdStore`
/// implements `MailboxStore` itself.
public struct EtcdProvider: BackendProvider {
    public static let name = "etcd"
    /// `--etcd` when not given.
    public static let defaultEndpoints = "http://127.0.0.1:2379"

    @Option(help: "(etcd) The cluster's client URLs, comma-separated http://HOST:PORT. (default: \(EtcdProvider.defaultEndpoints))")
    public var etcd: String?

    public init() {}

    public var givenOptions: [String] { etcd != nil ? ["--etcd"] : [] }

    public func store(for request: StoreRequest) throws -> any BackendStore {
        EtcdBackendStore(request: request, endpoints: try Self.endpoints(etcd ?? Self.defaultEndpoints), lease: nil)
    }

    /// The store a runtime record names: its endpoints and, when recorded, its lease
    /// (which `dipcrm` revokes after a crash).
    public static func store(for request: StoreRequest, record field: (String) -> String?) -> any BackendStore {
        let endpoints = (try? Self.endpoints(field("etcd") ?? defaultEndpoints)) ?? [defaultEndpoints]
        let lease = field("etcd_lease").flatMap { UInt64($0, radix: 16) }.map { Int64(bitPattern: $0) }
        return EtcdBackendStore(request: request, endpoints: endpoints, lease: lease)
    }

    /// A store in the scratch cluster (`useScratchCluster`), else the cluster that
    /// `DIPC_ETCD_ENDPOINTS` names, else the default endpoint. Nothing lies in `directory`.
    public static func scratchStore(for request: StoreRequest, directory: String) -> any BackendStore {
        let configured = scratchEndpoints.withLock { $0 }
            ?? getenv("DIPC_ETCD_ENDPOINTS").flatMap { try? endpoints(String(cString: $0)) }
            ?? [defaultEndpoints]
        return EtcdBackendStore(request: request, endpoints: configured, lease: nil)
    }

    /// Makes `scratchStore` use the cluster at `endpoints` (tests and benchmarks start a
    /// private cluster and name it here; the provider never starts one itself).
    public static func useScratchCluster(endpoints: [String]) {
        scratchEndpoints.withLock { $0 = endpoints }
    }

    private static let scratchEndpoints = Mutex<[String]?>(nil)

    /// `--etcd`'s URLs, checked: `http://HOST:PORT` each.
    static func endpoints(_ text: String) throws -> [String] {
        let urls = text.split(separator: ",", omittingEmptySubsequences: false).map {
            String($0).trimmingSuffix("/")
        }
        for url in urls {
            let rest = url.hasPrefix("http://") ? url.dropFirst(7) : ""
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port),
                  !parts[0].contains("/")
            else {
                throw ValidationError("--etcd must be comma-separated http://HOST:PORT URLs, not \"\(text)\"")
            }
        }
        return urls
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

/// One etcd store, configured, not yet open.
struct EtcdBackendStore: BackendStore {
    let request: StoreRequest
    let endpoints: [String]
    /// The lease of a crashed server, from its runtime record.
    let lease: Int64?

    var recordFields: [(String, String)] { [("etcd", endpoints.joined(separator: ","))] }
    var persistent: Bool { true }
    var blockBackend: (@Sendable (Bool) throws -> BlockBackend?)? { nil }

    private var layout: EtcdLayout { EtcdLayout(name: request.name) }

    func open() throws -> any MailboxStore {
        try EtcdStore.open(
            request: StoreRequestFacts(name: request.name, geometry: request.geometry, policy: request.policy),
            endpoints: endpoints, ioTimeout: request.ioTimeout)
    }

    func cleanUpAfterCrash(slot: Int?) throws -> String {
        guard let lease else { return "its store \"\(request.name)\" lives in etcd: nothing to remove (the keys stay in etcd)" }
        do {
            try EtcdLease.revoke(lease, client: EtcdClient(endpoints: endpoints), deadline: monotonicSeconds() + 5)
            return "revoked its etcd lease (its places in line are gone); the store \"\(request.name)\" stays in etcd"
        } catch {
            return "could not reach etcd to revoke its lease (it expires within \(EtcdLease.ttl) s); the store stays in etcd"
        }
    }

    /// The server keys and places in line that exist now (the mailboxes and the store's
    /// record are persistent data).
    func leftovers() -> [String] {
        let client = EtcdClient(endpoints: endpoints)
        var found: [String] = []
        for prefix in [layout.servers, layout.lines] {
            guard let reply = try? client.call("/v3/kv/range", EtcdJSON.range(prefix, prefix: true, keysOnly: true),
                                               deadline: monotonicSeconds() + 5, idempotent: true)
            else { return ["etcd at \(endpoints.joined(separator: ",")) (unreachable)"] }
            found += EtcdJSON.kvs(reply).map { "etcd key \($0.key)" }
        }
        return found
    }

    func destroy() {
        _ = try? EtcdClient(endpoints: endpoints).call(
            "/v3/kv/deleterange", EtcdJSON.delete(layout.prefix, prefix: true), deadline: monotonicSeconds() + 5, idempotent: true)
    }
}
