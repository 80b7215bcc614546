import Foundation
import Testing

/// Several servers sharing one store by `--name`.
@Suite("shared stores")
struct SharedStoreTests {
    @Test("two servers with one --name: shared data; the last dipcrm removes the store", arguments: E2E.builtBackends)
    func twoServersShare(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend)
            let b = try scope.start(backend)
            let ca = try a.connect()
            let cb = try b.connect()
            #expect(try ca.write(1, "from A") == 1)
            let (d, v) = try cb.read(1)
            #expect(d == Array("from A".utf8) && v == 1, "B reads A's write: \(String(decoding: d, as: UTF8.self).debugDescription) v\(v)")
            #expect(try cb.write(1, "from B") == 2, "versions are per mailbox, shared")
            #expect(try ca.read(1).data == Array("from B".utf8))
            ca.close()

            let rmA = try scope.dipcrm(a.port)
            #expect(rmA.status == 0, "\(rmA)")
            #expect(a.waitGone(timeout: 5), "A still alive")
            #expect(!IPC.exists(scope.recordPath(a.port)), "A's record left")
            #expect(!portAccepts(a.port))
            #expect(!b.storeObjects().isEmpty, "dipcrm A removed the store B still uses")
            let (d2, v2) = try cb.read(1)
            #expect(d2 == Array("from B".utf8) && v2 == 2, "B after dipcrm A")
            #expect(try cb.write(0, "still") == 1, "B writes after dipcrm A")
            #expect(try b.connect().read(0).data == Array("still".utf8))
            cb.close()

            let rmB = try scope.dipcrm(b.port)
            #expect(rmB.status == 0, "\(rmB)")
            waitUntil(timeout: 5) { leftovers(of: b, in: scope).isEmpty }
            #expect(leftovers(of: b, in: scope).isEmpty, "after the last dipcrm: \(leftovers(of: b, in: scope))")
            if backend == "tdb", let db = b.db { #expect(IPC.exists(db), "TDB file deleted") }
        }
    }

    @Test("three servers, stopped in start order, share until the last", arguments: E2E.builtBackends)
    func threeServers(backend: String) throws {
        try withScope { scope in
            let servers = try (0..<3).map { _ in try scope.start(backend) }
            for (i, s) in servers.enumerated() { try s.connect().write(i, "s\(i)") }
            for (i, s) in servers.enumerated() {
                let c = try s.connect()
                for j in 0..<3 { #expect(try c.read(j).data == Array("s\(j)".utf8), "server \(i) reads mailbox \(j)") }
            }
            for (i, s) in servers.enumerated() {
                let rm = try scope.dipcrm(s.port)
                #expect(rm.status == 0, "\(rm)")
                if i < 2 {
                    #expect(!s.storeObjects().isEmpty, "store removed while \(2 - i) sharers remain")
                    #expect(try servers[2].connect().read(0).data == Array("s0".utf8))
                }
            }
            waitUntil(timeout: 5) { IPC.storeObjects(name: scope.name, shmName: servers[2].shmName).isEmpty }
            #expect(IPC.storeObjects(name: scope.name, shmName: servers[2].shmName).isEmpty)
        }
    }

    @Test("the same name on different backends names different stores", .requires(.twoBackends))
    func namesArePerBackend() throws {
        try withScope { scope in
            let servers = try E2E.builtBackends.map { try scope.start($0) }
            for s in servers { try s.connect().write(0, s.backend) }
            for s in servers {
                let (d, v) = try s.connect().read(0)
                #expect(String(decoding: d, as: UTF8.self) == s.backend && v == 1, "\(s.backend): \(d) v\(v)")
            }
        }
    }
}
