/// Why a store could not be opened or used. `description` is one line for a user.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// The store exists with another geometry.
    case geometryMismatch(name: String, existing: StoreGeometry, requested: StoreGeometry)
    /// The store exists with another coordinator policy.
    case coordinatorMismatch(name: String, existing: String, requested: String)
    /// The store's memory or file is not a DIPC store of this format.
    case corrupt(name: String, reason: String)
    /// The geometry is larger than the backend can hold.
    case tooLarge(String)
    /// Every server slot of the store is taken by a live server.
    case tooManyServers(name: String, limit: Int)
    /// The store did not become usable in time (its creator stalled or died while formatting it).
    case notReady(name: String)
    /// The backend is not available in this build or on this machine.
    case unavailable(String)
    /// A running store could not be reached within the I/O timeout (etcd: no majority
    /// answered). The server answers `err unavailable`; the reason contains
    /// `outcome unknown` when a change may have been applied (SPEC §2, §4).
    case unreachable(String)

    public var description: String {
        switch self {
        case let .geometryMismatch(name, existing, requested):
            return "store \"\(name)\" exists with \(existing), not \(requested) (geometry differs)"
        case let .coordinatorMismatch(name, existing, requested):
            return "store \"\(name)\" uses the \(existing) coordinator, not \(requested)"
        case let .corrupt(name, reason):
            return "store \"\(name)\" is not a usable DIPC store: \(reason)"
        case let .tooLarge(reason):
            return reason
        case let .tooManyServers(name, limit):
            return "store \"\(name)\" already has \(limit) live servers attached"
        case let .notReady(name):
            return "store \"\(name)\" was never finished by the server that created it; remove it with dipcrm"
        case let .unavailable(reason), let .unreachable(reason):
            return reason
        }
    }
}
