import DIPCCore
import DIPCTDB

/// Everything needed to open (or find) a store with a concrete backend.
public struct StoreSpec: Sendable {
    public var kind: BackendKind
    public var name: String
    public var geometry: StoreGeometry
    public var policy: CoordinatorPolicy
    /// (tdb) the database file.
    public var databasePath: String?
    /// (tdb) fsync every committed write.
    public var sync: Bool

    public init(kind: BackendKind, name: String, geometry: StoreGeometry, policy: CoordinatorPolicy,
                databasePath: String? = nil, sync: Bool = false) {
        self.kind = kind
        self.name = name
        self.geometry = geometry
        self.policy = policy
        self.databasePath = databasePath
        self.sync = sync
    }
}

extension StoreSpec {
    /// (tdb) The file of store `name` when `--db` is not given (see `TDBBackend`).
    public static func defaultDatabasePath(name: String) -> String { TDBBackend.defaultDatabasePath(name: name) }

    /// What a server's runtime record says of this store before the store is open (the
    /// TDB file, absolute), so that `dipcrm` can find it if the server dies meanwhile.
    public var recordFields: [(String, String)] {
        guard kind == .tdb, let databasePath else { return [] }
        return [("db", TDBBackend.absolutePath(databasePath))]
    }

    /// The store a runtime record names, and the server's slot in it (nil when the
    /// server died before claiming one); nil when the record lacks a field.
    public static func fromRecord(_ fields: [(String, String)]) -> (StoreSpec, slot: Int?)? {
        func field(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }
        guard let kind = field("backend").flatMap(BackendKind.init(rawValue:)), let name = field("name"),
              let mailboxes = field("mailboxes").flatMap({ Int($0) }), mailboxes > 0,
              let size = field("mailbox_size").flatMap({ Int($0) }), size > 0,
              let policy = field("coordinator").flatMap(CoordinatorPolicy.init(rawValue:)) else { return nil }
        let slot = field("slot").flatMap { Int($0) }
        let spec = StoreSpec(kind: kind, name: name, geometry: StoreGeometry(mailboxes: mailboxes, mailboxSize: size),
                             policy: policy, databasePath: field("db"))
        return (spec, slot)
    }
}
