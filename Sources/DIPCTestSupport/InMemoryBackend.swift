import DIPCCore
import Glibc
import Synchronization

/// The reference `BlockBackend`: a store kept in this process's memory, with the
/// semantics of `MappedBlockBackend` and none of its layout.
///
/// - The control region is an anonymous `MAP_SHARED` mapping of
///   `StoreLayout.controlSize(for:)` bytes (zero-filled, so `createdControl` opens
///   get zeroed memory), shared by every open of the same name in this process.
/// - Each mailbox is a list of messages (`[[UInt8]]`) and a version behind its own
///   mutex, so the backend stays memory-safe even if a caller forgets the coordinator.
/// - Opens of the same name share one store through a process-wide registry, so
///   attach, `close(removing:)` and `SharedStore` sharing behave as with shared
///   memory: the first open creates, later ones attach, `close(removing: true)` takes
///   the name out of the registry (openers that still hold it keep their memory, as
///   with an unlinked segment), `close(removing: false)` leaves it for the others.
///
/// Use it to test code above the backend (coordinator, server) without IPC objects,
/// and as the model the conformance suite compares real backends with.
public final class InMemoryBackend: BlockBackend {
    /// What a store opened by `open(name:geometry:create:)` holds.
    final class Store: @unchecked Sendable {
        let geometry: StoreGeometry
        let control: UnsafeMutableRawPointer
        let controlSize: Int
        let mailboxes: [Mailbox]

        init(geometry: StoreGeometry) throws {
            let size = StoreLayout.controlSize(for: geometry)
            guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0),
                  pointer != MAP_FAILED
            else { throw SystemError.last("mmap") }
            self.geometry = geometry
            self.control = pointer
            self.controlSize = size
            self.mailboxes = (0..<geometry.mailboxes).map { _ in Mailbox() }
        }

        deinit { munmap(control, controlSize) }
    }

    /// One mailbox: its messages (oldest first) and version.
    final class Mailbox: Sendable {
        struct Content {
            var messages: [[UInt8]] = []
            var version: UInt64 = 0
            /// Bytes the list uses as `StoreLayout` counts them (length fields included).
            var used: Int { messages.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count } }
        }
        let content = Mutex(Content())
    }

    /// Stores by name: the "shared objects" of this backend.
    private static let registry = Mutex<[String: Store]>([:])

    /// The store names that exist now (for leak checks: empty once every store was removed).
    public static func existingStores() -> [String] {
        registry.withLock { Array($0.keys) }.sorted()
    }

    /// Whether store `name` exists (was created and not yet removed).
    public static func exists(_ name: String) -> Bool {
        registry.withLock { $0[name] != nil }
    }

    /// Removes store `name` from the registry if it is there (test cleanup).
    public static func destroy(_ name: String) {
        _ = registry.withLock { $0.removeValue(forKey: name) }
    }

    /// Opens store `name`, creating it when it does not exist and `create` is true;
    /// nil when it does not exist and `create` is false. Attaching with another
    /// geometry throws `StoreError.geometryMismatch`.
    public static func open(name: String, geometry: StoreGeometry, create: Bool) throws -> BlockBackend? {
        try registry.withLock { stores -> BlockBackend? in
            if let store = stores[name] {
                guard store.geometry == geometry else {
                    throw StoreError.geometryMismatch(name: name, existing: store.geometry, requested: geometry)
                }
                return InMemoryBackend(name: name, store: store, created: false)
            }
            guard create else { return nil }
            let store = try Store(geometry: geometry)
            stores[name] = store
            return InMemoryBackend(name: name, store: store, created: true)
        }
    }

    /// The store's name.
    public let name: String
    public let geometry: StoreGeometry
    public let createdControl: Bool
    private let held = Mutex<Store?>(nil)
    private let controlPointer: UnsafeMutableRawPointer

    private init(name: String, store: Store, created: Bool) {
        self.name = name
        self.geometry = store.geometry
        self.createdControl = created
        self.controlPointer = store.control
        held.withLock { $0 = store }
    }

    public var control: UnsafeMutableRawPointer { controlPointer }
    public var recordFields: [(String, String)] { [("memory_store", name)] }

    private func mailbox(_ index: Int) throws -> Mailbox {
        guard let store = held.withLock({ $0 }) else {
            throw StoreError.unavailable("in-memory store \"\(name)\" was closed by this opener")
        }
        precondition(store.mailboxes.indices.contains(index), "mailbox \(index) out of range 0..<\(geometry.mailboxes)")
        return store.mailboxes[index]
    }

    public func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        let (newest, version) = try self.mailbox(mailbox).content.withLock { ($0.messages.last, $0.version) }
        buffer.removeAll(keepingCapacity: true)
        if let newest { buffer.append(contentsOf: newest) }
        return version
    }

    public func version(of mailbox: Int) throws -> UInt64 {
        try self.mailbox(mailbox).content.withLock { $0.version }
    }

    public func replace(_ mailbox: Int, with data: UnsafeRawBufferPointer) throws -> UInt64 {
        precondition(data.count <= geometry.mailboxSize, "value larger than the mailbox")
        let message = [UInt8](data)
        return try self.mailbox(mailbox).content.withLock {
            $0.messages = [message]
            $0.version += 1
            return $0.version
        }
    }

    public func append(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64? {
        let message = [UInt8](data)
        let geometry = self.geometry
        return try self.mailbox(mailbox).content.withLock {
            guard StoreLayout.fits(used: $0.used, adding: message.count, in: geometry) else { return nil }
            $0.messages.append(message)
            $0.version += 1
            return $0.version
        }
    }

    public func queueState(_ mailbox: Int) throws -> QueueState {
        try self.mailbox(mailbox).content.withLock { QueueState(count: $0.messages.count, usedBytes: $0.used) }
    }

    public func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? {
        let taken: ([UInt8], UInt64)? = try self.mailbox(mailbox).content.withLock {
            guard !$0.messages.isEmpty else { return nil }
            let oldest = $0.messages.removeFirst()
            $0.version += 1
            return (oldest, $0.version)
        }
        guard let (message, version) = taken else { return nil }
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: message)
        return version
    }

    public func close(removing: Bool) throws {
        let store = held.withLock { held -> Store? in
            defer { held = nil }
            return held
        }
        guard removing, let store else { return }
        // Remove the name only if it still names this store (not one created after a removal).
        InMemoryBackend.registry.withLock { stores in
            if stores[name] === store { stores[name] = nil }
        }
    }
}
