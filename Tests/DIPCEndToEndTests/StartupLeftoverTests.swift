import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Start-up failures of the tdb backend leave no coordinator map either: its name
/// (`/dipc.tdb.DEV.INODE`) does not contain the store name, so the generic checks of
/// StartupFailureTests cannot see it.
@Suite("start-up leftovers")
struct StartupLeftoverTests {
    /// The /dev/shm path of the coordinator map of the TDB file at `db`, if the file exists.
    static func coordinatorMap(of db: String) -> String? {
        var st = stat()
        guard stat(db, &st) == 0 else { return nil }
        return "/dev/shm/dipc.tdb.\(UInt64(st.st_dev)).\(UInt64(st.st_ino))"
    }

    @Test("tdb: a corrupt file, a different geometry, or a directory as --db leave no coordinator map", .requires(.tdbBackend))
    func tdbFailuresLeaveNoMap() throws {
        try withScope { scope in
            // A file a server made, then stopped: asking for another geometry must fail.
            let made = scope.dir + "/made.tdb"
            let s = try scope.start("tdb", options: ["--db", made])
            try s.connect().write(1, "kept")
            let map = try #require(Self.coordinatorMap(of: made))
            #expect(IPC.exists(map), "a running server's coordinator map is not at \(map): the name formula is wrong")
            try #require(try scope.dipcrm(s.port).status == 0, "the server that made the file did not stop")
            let corrupt = scope.dir + "/corrupt.tdb"
            _ = FileManager.default.createFile(atPath: corrupt, contents: Data(repeating: 0xA5, count: 4096))
            let directory = scope.dir + "/a-directory.tdb"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)

            for (db, mailboxes) in [(made, 8), (corrupt, 4), (directory, 4)] {
                let port = try freePort()
                let r = try scope.dipc(
                    Scope.arguments(backend: "tdb", name: scope.name, options: ["--db", db], mailboxes: mailboxes,
                        mailboxKB: 4, port: port, packetKB: 1))
                StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
                if let map = Self.coordinatorMap(of: db) {
                    #expect(!IPC.exists(map), "\(db): failed start left its coordinator map \(map)")
                }
            }
            // The refused start did not damage the file.
            let again = try scope.start("tdb", options: ["--db", made])
            #expect(try again.connect().read(1).data == Array("kept".utf8))
            #expect(try scope.dipcrm(again.port).status == 0)
            if let map = Self.coordinatorMap(of: made) { #expect(!IPC.exists(map), "dipcrm left \(map)") }
        }
    }
}
