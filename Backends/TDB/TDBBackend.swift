import CTDB
import DIPCCore

/// The TDB backend (placeholder until the TDB work lands).
public enum TDBBackend {
    /// Opens store `name` kept in the TDB file at `databasePath` (creating the file when
    /// `create` is true and it is missing). Nil when `create` is false and the store's
    /// shared control map does not exist (no server attached, nothing to clean).
    public static func open(name: String, geometry: StoreGeometry, databasePath: String, sync: Bool,
                            create: Bool) throws -> BlockBackend? {
        throw StoreError.unavailable("the tdb backend is not built yet")
    }
}
