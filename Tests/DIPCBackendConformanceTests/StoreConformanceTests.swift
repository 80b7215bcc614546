import DIPCBackends
import DIPCCore
import DIPCTestSupport
import Testing

/// Every backend's store passes the whole `MailboxStore` contract (`StoreConformance`),
/// through the interface only, with each coordinator policy it supports.
@Suite("Store conformance")
struct StoreConformanceTests {
    @Test("MailboxStore contract", arguments: BackendUnderTest.withPolicies)
    func contract(_ backend: BackendUnderTest, _ policy: CoordinatorPolicy) async throws {
        let factory = backend.storeFactory
        let passed = try await TestThreads.offPool { try StoreConformance.verify(factory, policy: policy) }
        #expect(passed == StoreConformance.Check.allCases)
    }

    /// A backend added to the registry is checked without anyone remembering to list it.
    @Test("the store contract runs for the reference and every registered backend, coordinated ones with every policy")
    func everyBackendIsChecked() {
        let cases = BackendUnderTest.withPolicies
        let expected = Set(BackendRegistry.names + [BackendUnderTest.inMemory.name])
        #expect(Set(cases.map(\.0.name)) == expected)
        #expect(Set(cases.map(\.0.storeFactory.name)) == expected)
        for backend in BackendUnderTest.coordinated {
            #expect(Set(cases.filter { $0.0.name == backend.name }.map(\.1)) == Set(CoordinatorPolicy.allCases),
                    "\(backend.name)")
        }
    }

    /// The verifier itself: a store that breaks a clause is caught, with the clause named.
    @Test("the verifier rejects a store whose write does not advance the version")
    func verifierCatchesForgottenVersions() async throws {
        let broken = Self.wrapping(name: "broken-version", ForgetfulWriteStore.init)
        let error = try #require(throws: ConformanceFailure.self) { try StoreConformance.verify(broken) }
        #expect(error.check.hasPrefix("contract:"))
        #expect(error.check.contains("version returned by write 2"))
        #expect(error.description.contains("expected 2, got 1"))
        #expect(InMemoryBackend.existingStores().allSatisfy { !$0.hasPrefix("sconf-broken-version-") })
    }

    @Test("the verifier rejects a store that takes the newest message first")
    func verifierCatchesNewestFirst() async throws {
        let broken = Self.wrapping(name: "broken-order", NewestFirstStore.init)
        let error = try #require(throws: ConformanceFailure.self) { try StoreConformance.verify(broken, checks: [.queueOrder]) }
        #expect(error.check.hasPrefix("queueOrder:"))
        #expect(error.check.contains("take 1 of"))
        #expect(error.check.contains("oldest first"))
        #expect(InMemoryBackend.existingStores().allSatisfy { !$0.hasPrefix("sconf-broken-order-") })
    }

    /// The reference store with each handle wrapped by `wrap`.
    static func wrapping(name: String, _ wrap: @escaping @Sendable (any MailboxStore) -> any MailboxStore) -> StoreFactory {
        let inner = StoreFactory.inMemory
        return StoreFactory(
            name: name,
            open: { storeName, geometry, policy in wrap(try inner.open(storeName, geometry, policy)) },
            leftovers: inner.leftovers, cleanup: inner.cleanup)
    }
}

/// Forwards every call to another store.
class ForwardingStore: MailboxStore, @unchecked Sendable {
    let inner: any MailboxStore
    init(_ inner: any MailboxStore) { self.inner = inner }
    var geometry: StoreGeometry { inner.geometry }
    func describe() -> StoreDescription { inner.describe() }
    func read(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 { try inner.read(mailbox, into: &buffer) }
    func version(of mailbox: Int) throws -> UInt64 { try inner.version(of: mailbox) }
    func write(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64 { try inner.write(mailbox, data) }
    func push(_ mailbox: Int, _ data: UnsafeRawBufferPointer, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64> {
        try inner.push(mailbox, data, waiting: wait)
    }
    func take(_ mailbox: Int, into buffer: inout [UInt8], waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64> {
        try inner.take(mailbox, into: &buffer, waiting: wait)
    }
    func waitForChange(of mailbox: Int, after version: UInt64, waiting wait: MailboxWait) throws -> MailboxWaitOutcome<Void> {
        try inner.waitForChange(of: mailbox, after: version, waiting: wait)
    }
    func detach() throws -> Bool { try inner.detach() }
}

/// A store whose `write` reports version 1 at most: the version does not advance.
final class ForgetfulWriteStore: ForwardingStore, @unchecked Sendable {
    override func write(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64 {
        min(try inner.write(mailbox, data), 1)
    }
}

/// A store whose `take` removes the newest message instead of the oldest.
final class NewestFirstStore: ForwardingStore, @unchecked Sendable {
    override func take(_ mailbox: Int, into buffer: inout [UInt8], waiting wait: MailboxWait) throws -> MailboxWaitOutcome<UInt64> {
        var messages: [[UInt8]] = []
        var message: [UInt8] = []
        while case .done = try inner.take(mailbox, into: &message, waiting: .never) { messages.append(message) }
        guard let newest = messages.popLast() else { return try inner.take(mailbox, into: &buffer, waiting: wait) }
        var version = try inner.version(of: mailbox)
        for older in messages {
            if case let .done(pushed) = try older.withUnsafeBytes({ try inner.push(mailbox, $0, waiting: .never) }) {
                version = pushed
            }
        }
        buffer = newest
        return .done(version)
    }
}
