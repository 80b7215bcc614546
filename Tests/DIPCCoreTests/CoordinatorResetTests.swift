import Glibc
import Testing

@testable import DIPCCore
import DIPCSysV

/// The first server attaching to a store that no live server uses resets the
/// coordinator state, including state that no purge of an occupied slot would find.
extension CoordinatorTests {
    @Test("the first attacher to a store nobody alive uses starts from a clean coordinator state", arguments: policies)
    func firstAttacherResets(policy: CoordinatorPolicy) throws {
        let name = "coordreset\(getpid())\(policy == .fifo ? "f" : "p")"
        let geometry = StoreGeometry(mailboxes: 2, mailboxSize: 1024)
        let open: () throws -> BlockBackend = {
            guard let backend = try SysVBackend.open(name: name, geometry: geometry, create: true) else {
                throw SystemError("SysVBackend.open", errno: ENOENT)
            }
            return backend
        }
        // A server that is not alive (this pid with another start time) made the store.
        let me = ProcessIdentity.current()
        let dead = ProcessIdentity(pid: me.pid, startTime: me.startTime + 1)
        let crashed = try SharedStore.open(name: name, geometry: geometry, policy: policy, identity: dead, openBackend: open)
        // It left a write lock, read holds, a queued ticket and a blocked reader under a
        // slot nobody occupies, and a mutex held by nobody alive.
        let record = crashed.coordinator.record(0)
        _ = try record.mutex.lock()
        record.writer = 6
        record.setReadHolds(7, 2)
        record.activeReaders = 2
        _ = record.takeTicket()
        record.addTicketHolder(7)
        record.addBlockedReader(7)
        record.mutex.unlock()
        try crashed.backend.close(removing: false)

        let store = try SharedStore.open(name: name, geometry: geometry, policy: policy, openBackend: open)
        defer { _ = try? store.detach() }
        let state = try store.coordinator.stateSnapshot(of: 0)
        #expect(state.writer == nil && state.activeReaders == 0 && state.queued == 0, "\(state)")
        #expect(state.slots.allSatisfy { $0 == .init(readHolds: 0, tickets: 0, blocked: 0) }, "\(state.slots)")
        #expect(try store.coordinator.withWriteAccess(to: 0) { true })
    }
}
