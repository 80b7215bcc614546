import DIPCBackendProvider
import DIPCBackends
import DIPCCore
import DIPCEtcd
import DIPCTestSupport
import Glibc
import Testing

/// The backends under test: the in-memory reference and every backend in the
/// registry, so a registered backend cannot be left out of the conformance suite.
struct BackendUnderTest: Sendable, CustomTestStringConvertible {
    let name: String
    /// How `BackendConformance` opens, inspects and cleans up the backend; nil for a
    /// self-coordinating backend (it has no `BlockBackend` beneath its store).
    let factory: BackendFactory?

    var testDescription: String { name }

    static let inMemory = BackendUnderTest(name: "inMemory", factory: .inMemory)

    /// Every registered backend, in the registry's order.
    static let registered: [BackendUnderTest] = BackendRegistry.defaults.providers.map { provider in
        let backend = type(of: provider)
        return BackendUnderTest(name: backend.name, factory: Factories.factory(for: backend))
    }

    static let all: [BackendUnderTest] = [inMemory] + registered
    /// Those with a `BlockBackend` beneath (the `BlockBackend` contract applies to them).
    static let coordinated: [BackendUnderTest] = all.filter { $0.factory != nil }
}

/// Factories derived from each backend's scratch stores, in the temporary directory;
/// leak detection and clean-up touch only the stores the suite made up.
enum Factories {
    static var scratchDirectory: String {
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        return tmp.isEmpty ? "/tmp" : tmp
    }

    /// Store `name` of `backend` (geometry and policy matter only when it is opened).
    static func store(_ backend: any BackendProvider.Type, _ name: String,
                      _ geometry: StoreGeometry = BackendConformance.defaultGeometry) -> any BackendStore {
        backend.scratchStore(for: StoreRequest(name: name, geometry: geometry, policy: .fifo), directory: scratchDirectory)
    }

    /// The conformance factory of `backend`, nil when it coordinates itself.
    static func factory(for backend: any BackendProvider.Type) -> BackendFactory? {
        let probe = store(backend, "probe")
        guard probe.blockBackend != nil else { return nil }
        return BackendFactory(
            name: backend.name, persistent: probe.persistent,
            open: { name, geometry, create in try store(backend, name, geometry).blockBackend!(create) },
            leftovers: { name in store(backend, name).leftovers() },
            cleanup: { name in store(backend, name).destroy() })
    }
}

extension BackendUnderTest {
    /// How `StoreConformance` opens this backend's stores: the registry's scratch stores
    /// (each backend's own `BackendStore.open`), and `SharedStore` over `InMemoryBackend`
    /// for the reference.
    var storeFactory: StoreFactory {
        if name == BackendUnderTest.inMemory.name { return .inMemory }
        guard let provider = BackendRegistry.defaults.provider(named: name) else {
            fatalError("backend \(name) is neither the reference nor registered")
        }
        return Factories.storeFactory(for: type(of: provider))
    }

    /// The coordinator policies its stores are checked with: every one for a coordinated
    /// backend, the default for a self-coordinating one (its store records one engine).
    var policies: [CoordinatorPolicy] { factory != nil ? CoordinatorPolicy.allCases : [.fifo] }

    /// Every backend under test with each of its policies, for the store-level suites.
    static let withPolicies: [(BackendUnderTest, CoordinatorPolicy)] = all.flatMap { backend in
        backend.policies.map { (backend, $0) }
    }
}

extension Factories {
    /// The `StoreConformance` factory of `backend`: its scratch stores, opened with
    /// the requested geometry and policy.
    static func storeFactory(for backend: any BackendProvider.Type) -> StoreFactory {
        StoreFactory(
            name: backend.name, persistent: store(backend, "probe").persistent,
            open: { name, geometry, policy in
                try ScratchServices.prepare(backend)
                return try backend.scratchStore(for: StoreRequest(name: name, geometry: geometry, policy: policy),
                                                directory: scratchDirectory).open()
            },
            leftovers: { name in
                (try? ScratchServices.prepare(backend)).map { store(backend, name).leftovers() } ?? []
            },
            cleanup: { name in
                if (try? ScratchServices.prepare(backend)) != nil { store(backend, name).destroy() }
            })
    }
}

/// What a backend's scratch stores need running besides files: for etcd, one private
/// single-node cluster per test process (started on first use, SIGKILLed at exit),
/// handed to the provider with `EtcdProvider.useScratchCluster`. Providers never start
/// services themselves (they must not depend on the test support).
enum ScratchServices {
    static let etcd: Result<EtcdCluster, any Error> = Result {
        let cluster = try EtcdCluster(nodes: 1)
        EtcdProvider.useScratchCluster(endpoints: cluster.endpoints)
        return cluster
    }

    /// Starts what `backend`'s scratch stores need (once per process); throws when it cannot.
    static func prepare(_ backend: any BackendProvider.Type) throws {
        if backend.name == EtcdProvider.name { _ = try etcd.get() }
    }
}
