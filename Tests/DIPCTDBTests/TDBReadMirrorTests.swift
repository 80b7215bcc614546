import DIPCCore
import Testing

@testable import DIPCTDB

private let geometry = StoreGeometry(mailboxes: 4, mailboxSize: 4096)

/// The read copies in the control map (`TDBReadMirror`): used only while current, kept
/// current by committed changes, filled from the file when a control map is new.
@Suite("tdb read mirror")
struct TDBReadMirrorTests {
    private func mirror(of backend: TDBBlockBackend) -> TDBReadMirror {
        TDBReadMirror(control: backend.controlSegment.base, geometry: geometry)
    }

    @Test("a stale copy is never served: reads come from the file")
    func staleCopyIsIgnored() throws {
        let scratch = try TDBScratch()
        defer { scratch.cleanUp() }
        let a = try #require(try scratch.open("m.tdb", geometry))
        #expect(try a.write(0, "one") == 1)
        // What a writer killed inside its transaction leaves: other bytes, marked stale.
        let copies = mirror(of: a)
        Array("bogus".utf8).withUnsafeBytes { copies.publish(0, version: 99, newest: $0) }
        copies.markStale(0)
        #expect(try a.read(0) == ("one", 1))
        #expect(try a.version(of: 0) == 1)
    }

    @Test("every committed change leaves the copy current, seen by a second backend on the file")
    func committedChangesRefreshTheCopy() throws {
        let scratch = try TDBScratch()
        defer { scratch.cleanUp() }
        let a = try #require(try scratch.open("m.tdb", geometry))
        let b = try #require(try scratch.open("m.tdb", geometry))
        let copies = mirror(of: b)
        #expect(try a.push(1, "x") == 1)
        #expect(try a.push(1, "y") == 2)
        #expect(copies.version(of: 1) == 2)
        #expect(try b.read(1) == ("y", 2))
        #expect(try a.take(1)?.text == "x")
        #expect(copies.version(of: 1) == 3)
        #expect(try b.read(1) == ("y", 3))
        #expect(try a.take(1)?.text == "y")
        #expect(try b.read(1) == ("", 4))
        #expect(try a.write(2, "w") == 1)
        var buffer: [UInt8] = []
        #expect(copies.readNewest(2, into: &buffer) == 1)
        #expect(buffer == Array("w".utf8))
    }

    @Test("a new control map on an existing file starts with the file's records")
    func newControlMapIsFilled() throws {
        let scratch = try TDBScratch()
        defer { scratch.cleanUp() }
        let a = try #require(try scratch.open("m.tdb", geometry))
        #expect(try a.write(2, "kept") == 1)
        try a.close(removing: true)  // removes the control map, keeps the file
        let b = try #require(try scratch.open("m.tdb", geometry))
        #expect(b.createdControl)
        var buffer: [UInt8] = []
        #expect(mirror(of: b).readNewest(2, into: &buffer) == 1)
        #expect(buffer == Array("kept".utf8))
        #expect(mirror(of: b).version(of: 0) == 0, "an unwritten mailbox is copied as empty at version 0")
        #expect(try b.read(2) == ("kept", 1))
    }
}
