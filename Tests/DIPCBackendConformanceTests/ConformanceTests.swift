import DIPCCore
import DIPCTestSupport
import Testing

/// Every backend passes the whole `BlockBackend` contract (`BackendConformance`),
/// and keeps values whole and versions monotonic under concurrent use through
/// `SharedStore`, with both coordinator policies.
@Suite("Backend conformance")
struct ConformanceTests {
    @Test("BlockBackend contract", arguments: BackendUnderTest.coordinated)
    func contract(_ backend: BackendUnderTest) async throws {
        let factory = try #require(backend.factory)
        let passed = try await TestThreads.offPool { try BackendConformance.verify(factory) }
        #expect(passed == BackendConformance.Check.allCases)
    }

    @Test(
        "4 writers and 4 readers on 2 mailboxes: no torn value, versions never go back",
        arguments: BackendUnderTest.coordinated, CoordinatorPolicy.allCases)
    func concurrentReadersAndWriters(_ backend: BackendUnderTest, _ policy: CoordinatorPolicy) async throws {
        let factory = try #require(backend.factory)
        let report = try await TestThreads.offPool {
            try BackendConformance.stress(factory, policy: policy, writers: 4, readers: 4, mailboxes: 2)
        }
        #expect(report.finalVersions.reduce(0, +) == UInt64(report.writes))
        #expect(report.reads > 0)
    }

    /// The verifier itself: a backend that breaks a clause is caught, with the clause named.
    @Test("the verifier rejects a backend that forgets versions")
    func verifierCatchesABrokenBackend() async throws {
        let broken = BackendFactory(
            name: "broken",
            open: { name, geometry, create in
                try InMemoryBackend.open(name: name, geometry: geometry, create: create).map(ForgetfulBackend.init)
            },
            leftovers: BackendFactory.inMemory.leftovers,
            cleanup: BackendFactory.inMemory.cleanup)
        let error = try #require(throws: ConformanceFailure.self) {
            try BackendConformance.verify(broken, checks: [.replace])
        }
        #expect(error.check.hasPrefix("replace:"))
        #expect(error.description.contains("expected 2"))
        #expect(InMemoryBackend.existingStores().allSatisfy { !$0.hasPrefix("conf-broken-") })
    }
}

/// A backend whose `replace` does not advance the version after the first write.
final class ForgetfulBackend: BlockBackend {
    let inner: BlockBackend
    init(_ inner: BlockBackend) { self.inner = inner }
    var geometry: StoreGeometry { inner.geometry }
    var control: UnsafeMutableRawPointer { inner.control }
    var createdControl: Bool { inner.createdControl }
    var recordFields: [(String, String)] { inner.recordFields }
    func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        _ = try inner.readNewest(mailbox, into: &buffer)
        return min(try inner.version(of: mailbox), 1)
    }
    func version(of mailbox: Int) throws -> UInt64 { min(try inner.version(of: mailbox), 1) }
    func replace(_ mailbox: Int, with data: UnsafeRawBufferPointer) throws -> UInt64 {
        min(try inner.replace(mailbox, with: data), 1)
    }
    func append(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64? { try inner.append(mailbox, data) }
    func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? { try inner.takeOldest(mailbox, into: &buffer) }
    func queueState(_ mailbox: Int) throws -> QueueState { try inner.queueState(mailbox) }
    func close(removing: Bool) throws { try inner.close(removing: removing) }
}
