import ArgumentParser
import DIPCCore

/// One backend as `dipc`, `dipcrm` and the tests see it: its name, its own command-line
/// options (the conforming type's `@Option`/`@Flag` properties, shown in `dipc --help`),
/// how it makes a store from a request and from a crashed server's runtime record, and
/// a throwaway store for tests and benchmarks.
///
/// A backend lives in its own folder under Backends/ with a type conforming to this
/// protocol, and is listed once in `BackendRegistry` (target `DIPCBackends`).
///
/// ## What a conforming provider must do
/// - `name` is the `--backend` value: lower-case letters and digits, unique.
/// - Its options have defaults (parsing no arguments succeeds); `givenOptions` names
///   those given on the command line, so that `dipc` refuses them with another backend.
/// - `store(for:)` checks its options against the request and throws a one-line
///   `ValidationError` when they do not fit; it opens nothing.
/// - `store(for:record:)` rebuilds the store a runtime record names, from the fields
///   its `BackendStore.recordFields` and its open store's `StoreDescription.recordFields`
///   wrote there, so that `dipcrm` can clean up after a server that crashed at any point.
/// - `scratchStore(for:directory:)` is a throwaway store of the given name whose every
///   file lies under `directory` (the caller makes and removes it), for the
///   conformance suites and the benchmarks.
public protocol BackendProvider: ParsableArguments {
    /// The `--backend` value.
    static var name: String { get }
    /// The options of this backend given on the command line, as typed (`"--db"`).
    var givenOptions: [String] { get }
    /// This backend's store for `request`, with these options.
    func store(for request: StoreRequest) throws -> any BackendStore
    /// The store named by a runtime record (`field` looks up its fields).
    static func store(for request: StoreRequest, record field: (String) -> String?) -> any BackendStore
    /// A throwaway store whose files lie under `directory`.
    static func scratchStore(for request: StoreRequest, directory: String) -> any BackendStore
}

/// What every store request has, whatever the backend.
public struct StoreRequest: Sendable, Equatable {
    /// The store's name (`--name`); servers with the same backend and name share it.
    public var name: String
    public var geometry: StoreGeometry
    /// The readers-writer policy of a coordinated backend (a self-coordinating one
    /// records it and refuses a store made with another).
    public var policy: CoordinatorPolicy
    /// `--io-timeout` in seconds: how long a backend that talks to a network service
    /// (etcd) may try before answering that the store is unreachable.
    public var ioTimeout: Double

    public init(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy, ioTimeout: Double = 30) {
        self.name = name
        self.geometry = geometry
        self.policy = policy
        self.ioTimeout = ioTimeout
    }
}

/// One store of one backend, fully configured, not yet open.
public protocol BackendStore: Sendable {
    var request: StoreRequest { get }
    /// Facts for the runtime record known before the store opens (tdb: its file), so
    /// that `dipcrm` finds the store if the server dies while opening it.
    var recordFields: [(String, String)] { get }
    /// True when the content outlives the removal of the store's shared objects (a file
    /// or a database keeps the mailboxes).
    var persistent: Bool { get }
    /// Creates the store or attaches to it, as one more server of it.
    func open() throws -> any MailboxStore
    /// After a server of this store died without detaching (`slot`: its place in the
    /// store, when it had claimed one): frees what it held, and removes the store's
    /// shared objects when no live server remains. Returns what it did, for the user.
    func cleanUpAfterCrash(slot: Int?) throws -> String
    /// The coordinated backend beneath, for `BackendConformance`: opens it (creating it
    /// when `create`), nil when missing and not `create`. Nil for a self-coordinating store.
    var blockBackend: (@Sendable (_ create: Bool) throws -> BlockBackend?)? { get }
    /// Descriptions of the store's objects that exist now, other than persistent data
    /// (segments, shm objects, stray files). Empty once the store was removed.
    func leftovers() -> [String]
    /// Destroys everything of the store, persistent data included (tests only).
    func destroy()
}

/// A backend without options of its own, whose store depends on the request alone
/// (its name says where the store lives): every store it hands out, for a server, for
/// `dipcrm` or as a scratch store, is `store(_:)`.
public protocol OptionlessBackendProvider: BackendProvider {
    /// The store for `request`.
    static func store(_ request: StoreRequest) -> any BackendStore
}

extension OptionlessBackendProvider {
    public var givenOptions: [String] { [] }

    public func store(for request: StoreRequest) throws -> any BackendStore { Self.store(request) }

    public static func store(for request: StoreRequest, record field: (String) -> String?) -> any BackendStore {
        store(request)
    }

    public static func scratchStore(for request: StoreRequest, directory: String) -> any BackendStore {
        store(request)
    }
}
