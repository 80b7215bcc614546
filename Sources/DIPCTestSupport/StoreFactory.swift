import DIPCCore

/// How `StoreConformance` opens, inspects and cleans up the stores of one backend,
/// through the `MailboxStore` interface alone (so a self-coordinating backend is
/// described the same way as a coordinated one).
///
///     let factory = StoreFactory(
///         name: "sysv",
///         open: { name, geometry, policy in try /* the backend's store */.open() },
///         leftovers: { name in /* its shared objects that exist now */ },
///         cleanup: { name in /* destroy everything of it */ })
///     try StoreConformance.verify(factory)
public struct StoreFactory: Sendable, CustomStringConvertible {
    /// Short name for messages, such as `"sysv"`.
    public let name: String
    /// True when the content outlives the removal of the store's shared objects (a file
    /// or a database keeps the mailboxes after the last server detached).
    public let persistent: Bool
    /// Opens store `storeName` as one more server of it: creates it when it does not
    /// exist, attaches otherwise. Two opens of one name behave like two servers sharing
    /// the store.
    public let open: @Sendable (_ storeName: String, _ geometry: StoreGeometry, _ policy: CoordinatorPolicy) throws -> any MailboxStore
    /// Descriptions of the objects of store `storeName` that exist now, other than
    /// persistent data (see `BackendStore.leftovers`). Empty once the store was removed.
    public let leftovers: @Sendable (_ storeName: String) -> [String]
    /// Destroys whatever of store `storeName` still exists, persistent data included.
    /// Called for every store the suite used, even after a failure.
    public let cleanup: @Sendable (_ storeName: String) -> Void

    public init(
        name: String, persistent: Bool = false,
        open: @escaping @Sendable (_ storeName: String, _ geometry: StoreGeometry, _ policy: CoordinatorPolicy) throws -> any MailboxStore,
        leftovers: @escaping @Sendable (_ storeName: String) -> [String],
        cleanup: @escaping @Sendable (_ storeName: String) -> Void
    ) {
        self.name = name
        self.persistent = persistent
        self.open = open
        self.leftovers = leftovers
        self.cleanup = cleanup
    }

    public var description: String { name }

    /// The stores `SharedStore` makes over `backend`'s `BlockBackend`s (each open is
    /// `SharedStore.open` with `backend.open(name, geometry, create: true)`).
    public static func coordinated(_ backend: BackendFactory) -> StoreFactory {
        StoreFactory(
            name: backend.name, persistent: backend.persistent,
            open: { name, geometry, policy in
                try SharedStore.open(name: name, geometry: geometry, policy: policy) {
                    guard let opened = try backend.open(name, geometry, true) else {
                        throw StoreError.unavailable("open(create: true) returned nil")
                    }
                    return opened
                }
            },
            leftovers: backend.leftovers,
            cleanup: backend.cleanup)
    }

    /// The reference store: `SharedStore` over `InMemoryBackend`.
    public static let inMemory = coordinated(.inMemory)
}
