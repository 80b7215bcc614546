import ArgumentParser
import DIPCBackendProvider
import DIPCCore

extension BackendRegistry {
    /// The registry with every backend's options at their defaults.
    public static var defaults: BackendRegistry {
        do {
            return try parse([])
        } catch {
            fatalError("a registered backend has an option without a default: \(error)")
        }
    }

    /// The registered backends in order, with the options they were parsed with.
    public var providers: [any BackendProvider] {
        Mirror(reflecting: self).children.compactMap { ($0.value as? any RegisteredProvider)?.provider }
    }

    /// The registered backends' names, in order.
    public static var names: [String] { defaults.providers.map { type(of: $0).name } }

    /// The names as a phrase for messages: `"sysv, posix or tdb"`.
    public static var namesPhrase: String {
        let names = names
        guard names.count > 1 else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    /// The backend called `name`, with its parsed options.
    public func provider(named name: String) -> (any BackendProvider)? {
        providers.first { type(of: $0).name == name }
    }

    /// The store of backend `name` for `request`, refusing options of other backends
    /// (`ValidationError`, one line).
    public func store(backend name: String, for request: StoreRequest) throws -> any BackendStore {
        guard let chosen = provider(named: name) else {
            throw ValidationError("--backend must be \(Self.namesPhrase), not \"\(name)\"")
        }
        for other in providers where type(of: other).name != name {
            if let option = other.givenOptions.first {
                throw ValidationError("\(option) applies only to --backend \(type(of: other).name)")
            }
        }
        return try chosen.store(for: request)
    }

    /// The store a runtime record names, and the server's slot in it (nil when the
    /// server died before claiming one); nil when the record lacks a field or names an
    /// unknown backend.
    public static func store(fromRecord fields: [(String, String)]) -> (store: any BackendStore, slot: Int?)? {
        func field(_ key: String) -> String? { fields.first { $0.0 == key }?.1 }
        guard let backend = field("backend").flatMap({ defaults.provider(named: $0) }), let name = field("name"),
              let mailboxes = field("mailboxes").flatMap({ Int($0) }), mailboxes > 0,
              let size = field("mailbox_size").flatMap({ Int($0) }), size > 0,
              let policy = field("coordinator").flatMap(CoordinatorPolicy.init(rawValue:)) else { return nil }
        let request = StoreRequest(name: name, geometry: StoreGeometry(mailboxes: mailboxes, mailboxSize: size), policy: policy)
        return (type(of: backend).store(for: request, record: field), field("slot").flatMap { Int($0) })
    }
}

/// An `@OptionGroup` of the registry: the provider it holds.
protocol RegisteredProvider {
    var provider: any BackendProvider { get }
}

extension OptionGroup: RegisteredProvider where Value: BackendProvider {
    var provider: any BackendProvider { wrappedValue }
}
