import DIPCCore
import DIPCPOSIX
import DIPCSysV
import DIPCTDB

/// The one place that names the concrete backends: opens a store of any kind, and
/// cleans up what a crashed server of any kind left behind.
public enum BackendCatalog {
    /// Opens the backend objects of `spec`, creating them when `create` is true and
    /// they do not exist. Nil when they do not exist and `create` is false.
    public static func openBackend(_ spec: StoreSpec, create: Bool) throws -> BlockBackend? {
        switch spec.kind {
        case .sysv:
            return try SysVBackend.open(name: spec.name, geometry: spec.geometry, create: create)
        case .posix:
            return try POSIXBackend.open(name: spec.name, geometry: spec.geometry, create: create)
        case .tdb:
            guard let path = spec.databasePath else { throw StoreError.unavailable("the tdb backend needs a database path") }
            return try TDBBackend.open(name: spec.name, geometry: spec.geometry, policy: spec.policy, databasePath: path,
                                       sync: spec.sync, create: create)
        }
    }

    /// Creates or attaches the store of `spec` and claims a server slot in it.
    public static func openStore(_ spec: StoreSpec) throws -> SharedStore {
        try SharedStore.open(name: spec.name, geometry: spec.geometry, policy: spec.policy) {
            guard let backend = try openBackend(spec, create: true) else {
                throw StoreError.unavailable("store \"\(spec.name)\" could not be created")
            }
            return backend
        }
    }

    /// After the server in `slot` died without detaching: frees its slot and locks,
    /// and destroys the store's shared objects when no live server remains attached.
    /// Returns what it did, for the user.
    public static func cleanUpAfterCrash(_ spec: StoreSpec, slot: Int?) throws -> String {
        guard let backend = try openBackend(spec, create: false) else {
            return "its store \"\(spec.name)\" no longer exists (or was left unfinished and is now removed)"
        }
        let removed = try SharedStore.cleanUpAfterCrash(
            backend: backend, name: spec.name, geometry: spec.geometry, policy: spec.policy, slot: slot)
        return removed
            ? "removed its store \"\(spec.name)\" (\(spec.kind == .tdb ? "the coordinator map; the TDB file is kept" : "\(spec.kind.rawValue) shared memory"))"
            : "its store \"\(spec.name)\" is still used by other servers and was kept"
    }
}
