import DIPCCore

/// How the conformance suite opens, inspects and cleans up one kind of backend.
///
/// A new backend is proven by describing it here once:
///
///     let factory = BackendFactory(
///         name: "sysv",
///         open: { name, geometry, create in try SysVBackend.open(name: name, geometry: geometry, create: create) },
///         leftovers: { name in /* the segment keyed by name, if it still exists */ },
///         cleanup: { name in /* remove that segment if it exists */ })
///     try BackendConformance.verify(factory)
public struct BackendFactory: Sendable, CustomStringConvertible {
    /// Short name for messages, such as `"sysv"`.
    public let name: String
    /// True when content outlives the removal of the store's shared objects (TDB: the
    /// file keeps the mailboxes; `close(removing: true)` removes only the coordinator
    /// map). False when removal destroys the content (shared memory).
    public let persistent: Bool
    /// Opens store `storeName` with `geometry`: creates it when missing and `create`
    /// is true, attaches otherwise; nil when missing and `create` is false. The
    /// backend's own factory, with whatever extra arguments it needs (a TDB path).
    public let open: @Sendable (_ storeName: String, _ geometry: StoreGeometry, _ create: Bool) throws -> BlockBackend?
    /// Descriptions of the objects of store `storeName` that exist now (System V
    /// segments, `/dev/shm` entries, coordinator maps, files other than a persistent
    /// backend's data file). Empty once the store was removed.
    public let leftovers: @Sendable (_ storeName: String) -> [String]
    /// Destroys whatever of store `storeName` still exists, including a persistent
    /// backend's data file. Called for every store the suite used, even after a failure.
    public let cleanup: @Sendable (_ storeName: String) -> Void

    public init(
        name: String, persistent: Bool = false,
        open: @escaping @Sendable (_ storeName: String, _ geometry: StoreGeometry, _ create: Bool) throws -> BlockBackend?,
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

    /// The in-process reference backend (`InMemoryBackend`).
    public static let inMemory = BackendFactory(
        name: "inMemory",
        open: { name, geometry, create in try InMemoryBackend.open(name: name, geometry: geometry, create: create) },
        leftovers: { name in InMemoryBackend.exists(name) ? ["in-memory store \(name)"] : [] },
        cleanup: { name in InMemoryBackend.destroy(name) })
}

/// A violated clause of the `BlockBackend` (or `SharedStore`) contract: which
/// backend, which check, what the contract expects and what the backend did.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    public let backend: String
    /// The check and step, such as `"append: message 23 of 37 bytes"`.
    public let check: String
    public let expected: String
    public let got: String

    public init(backend: String, check: String, expected: String, got: String) {
        self.backend = backend
        self.check = check
        self.expected = expected
        self.got = got
    }

    public var description: String {
        "backend \(backend) fails \(check): expected \(expected), got \(got)"
    }
}
