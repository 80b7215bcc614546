import DIPCCore

/// A store of a `BlockBackend` served through `SharedStore` (store header and
/// `Coordinator` in the backend's shared control region): what sysv, posix and tdb
/// providers hand out.
public struct CoordinatedStore: BackendStore {
    public let request: StoreRequest
    public let recordFields: [(String, String)]
    public let persistent: Bool
    /// What removing the store removes, for `dipcrm`'s message (`"sysv shared memory"`).
    private let removes: String
    private let openBackend: @Sendable (_ create: Bool) throws -> BlockBackend?
    private let listLeftovers: @Sendable () -> [String]
    private let destroyAll: @Sendable () -> Void

    /// - Parameters:
    ///   - removes: what removing the store removes, for the user.
    ///   - openBackend: opens the backend's objects, creating them when `create`; nil
    ///     when they do not exist and `create` is false.
    ///   - leftovers: the store's objects that exist now (see `BackendStore.leftovers`).
    ///   - destroy: removes every object of the store, data included.
    public init(request: StoreRequest, recordFields: [(String, String)] = [], persistent: Bool = false,
                removes: String,
                openBackend: @escaping @Sendable (_ create: Bool) throws -> BlockBackend?,
                leftovers: @escaping @Sendable () -> [String],
                destroy: @escaping @Sendable () -> Void) {
        self.request = request
        self.recordFields = recordFields
        self.persistent = persistent
        self.removes = removes
        self.openBackend = openBackend
        listLeftovers = leftovers
        destroyAll = destroy
    }

    public func open() throws -> any MailboxStore {
        try SharedStore.open(name: request.name, geometry: request.geometry, policy: request.policy) {
            guard let backend = try openBackend(true) else {
                throw StoreError.unavailable("store \"\(request.name)\" could not be created")
            }
            return backend
        }
    }

    public func cleanUpAfterCrash(slot: Int?) throws -> String {
        guard let backend = try openBackend(false) else {
            return "its store \"\(request.name)\" no longer exists (or was left unfinished and is now removed)"
        }
        let removed = try SharedStore.cleanUpAfterCrash(
            backend: backend, name: request.name, geometry: request.geometry, policy: request.policy, slot: slot)
        return removed
            ? "removed its store \"\(request.name)\" (\(removes))"
            : "its store \"\(request.name)\" is still used by other servers and was kept"
    }

    public var blockBackend: (@Sendable (_ create: Bool) throws -> BlockBackend?)? { openBackend }

    public func leftovers() -> [String] { listLeftovers() }

    public func destroy() { destroyAll() }
}
