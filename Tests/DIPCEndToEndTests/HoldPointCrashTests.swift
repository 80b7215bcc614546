import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SIGKILL at exact moments, with the servers' test-only hold points
/// (`DIPC_TEST_HOLD=POINT:MAILBOX:FILE`, debug builds only): the server announces the
/// point by creating FILE and pauses there until FILE is removed.
extension CrashTests {
    /// A hold point armed in a server: its environment and its announcement.
    struct Hold {
        let point: String
        let mailbox: Int
        let file: String

        init(_ point: String, mailbox: Int = 0, in scope: Scope) {
            self.point = point
            self.mailbox = mailbox
            file = scope.dir + "/hold-\(point)-\(UUID().uuidString.prefix(8))"
        }

        var environment: [String: String] { ["DIPC_TEST_HOLD": "\(point):\(mailbox):\(file)"] }

        /// Waits until the server announced that it pauses at the point.
        func reached(timeout: Double = 10) -> Bool { waitUntil(timeout: timeout) { IPC.exists(file) } }

        /// Lets the paused server carry on.
        func release() { unlink(file) }
    }

    /// The moments at which a sharer is killed, with the request that brings it there.
    static let lockPoints = ["read-lock", "write-lock", "waiting"]
    static let policies = ["fifo", "phase-fair"]

    /// Every point under both policies, the backends taking turns: the coordinator is
    /// one implementation over every backend's region, so each backend still meets
    /// both policies and two of the points, while the suite stays short.
    ///
    /// Not etcd: its hold points are in the shared-memory coordinator and the mapped
    /// copy, which an etcd store has neither of (EtcdTests kills servers mid-run instead).
    static var lockCases: [(String, String, String)] {
        let backends = E2E.hostStoreBackends
        guard !backends.isEmpty else { return [] }
        return policies.flatMap { p in lockPoints.map { (p, $0) } }.enumerated().map { i, c in
            (backends[i % backends.count], c.0, c.1)
        }
    }

    /// How long an uncontended read of `mailbox` takes right now: the machine's load,
    /// subtracted from timed recoveries so that a busy machine does not fail them.
    static func idleRoundTrip(_ server: Server, mailbox: Int = 3) throws -> Double {
        let c = try server.connect()
        let start = monotonicNow()
        _ = try c.read(mailbox)
        return monotonicNow() - start
    }

    /// The reclaim deadline the issue sets: one second beyond ordinary service time.
    static let reclaimDeadline = 1.0

    @Test("SIGKILL holding a read or write lock, or waiting: a sharer reclaims within 1 s", arguments: lockCases)
    func killedAtLockPoint(backend: String, policy: String, point: String) throws {
        try withScope { scope in
            let options = ["--coordinator", policy]
            let old = Array("previous".utf8)
            // Waiting needs a holder: the survivor pauses holding the write lock.
            let survivorHold = point == "waiting" ? Hold("write-lock", in: scope) : nil
            let survivor = try scope.start(backend, options: options, extraEnv: survivorHold?.environment ?? [:])
            let setup = try survivor.connect()
            if survivorHold == nil { try setup.write(0, old) }
            let hold = Hold(point, in: scope)
            let victim = try scope.start(backend, options: options, extraEnv: hold.environment)
            let victimClient = try victim.connect()
            let survivorClient = try survivor.connect()

            if let survivorHold {
                // The survivor holds the write lock; the victim queues behind it and pauses.
                try setup.send(Array("w 0 \(old.count)\n".utf8) + old)
                try #require(survivorHold.reached(), "the survivor never reached its write lock")
                try victimClient.send("w 0 3\nnew")
            } else {
                try victimClient.send(point == "read-lock" ? "r 0\n" : "w 0 3\nnew")
            }
            try #require(hold.reached(), "\(backend)/\(policy): the victim never reached \(point)")

            if let survivorHold {
                victim.kill(SIGKILL)
                try #require(victim.waitGone(timeout: 5), "the victim still alive after SIGKILL")
                survivorHold.release()
                #expect(try setup.readLine() == "ok 1", "the survivor's own write")
            } else {
                // The survivor's conflicting request waits for the victim's lock ...
                try survivorClient.send(point == "read-lock" ? "w 0 5\nlater" : "r 0\n")
                #expect(survivorClient.staysSilent(for: 0.2), "\(point): the victim's lock did not block the survivor")
                victim.kill(SIGKILL)
                try #require(victim.waitGone(timeout: 5), "the victim still alive after SIGKILL")
            }
            // ... and is served within a second of the victim's death; so is the next one.
            let start = monotonicNow()
            if survivorHold == nil {
                if point == "read-lock" {
                    #expect(try survivorClient.readLine() == "ok 2")
                } else {
                    let (data, version) = try survivorClient.readDataReply(request: "r 0")
                    #expect(data == old && version == 1, "the victim's unfinished write is visible: v\(version)")
                }
            }
            let version = try survivorClient.write(0, "after")
            let elapsed = monotonicNow() - start
            let idle = try CrashTests.idleRoundTrip(survivor)
            #expect(try survivorClient.read(0).data == Array("after".utf8))
            #expect(version == (point == "read-lock" ? 3 : 2))
            #expect(elapsed - idle < CrashTests.reclaimDeadline,
                    "\(backend)/\(policy)/\(point): the survivor needed \(elapsed) s after the kill (idle round trip \(idle) s)")
            print("reclaim \(backend) \(policy) \(point): \(String(format: "%.3f", elapsed)) s (idle round trip \(String(format: "%.3f", idle)) s)")
        }
    }

    /// Not etcd: no mapped copy, so no mid-copy hold point (an etcd write is one etcd
    /// operation, applied whole or not at all).
    @Test("a writer killed mid-copy leaves the previous whole value", arguments: E2E.hostStoreBackends)
    func killedMidCopy(backend: String) throws {
        try withScope { scope in
            var g = SplitMix64()
            let old = CheckedValue.make(length: 200 * 1024, using: &g)
            let new = CheckedValue.make(length: 200 * 1024, using: &g)
            let survivor = try scope.start(backend, mailboxKB: 256, packetKB: 64)
            try survivor.connect().write(0, old)
            let hold = Hold("mid-copy", in: scope)
            let victim = try scope.start(backend, mailboxKB: 256, packetKB: 64, extraEnv: hold.environment)
            let victimClient = try victim.connect()
            try victimClient.send(Array("w 0 \(new.count)\n".utf8) + new)
            try #require(hold.reached(), "the victim never reached mid-copy")
            victim.kill(SIGKILL)
            try #require(victim.waitGone(timeout: 5), "the victim still alive after SIGKILL")
            let c = try survivor.connect()
            let start = monotonicNow()
            let (data, version) = try c.read(0)
            let elapsed = monotonicNow() - start
            let idle = try CrashTests.idleRoundTrip(survivor)
            #expect(elapsed - idle < CrashTests.reclaimDeadline, "read after the kill took \(elapsed) s (idle \(idle) s)")
            #expect(data == old && version == 1, "after a kill mid-copy: \(data.count) bytes v\(version), \(CheckedValue.problem(data) ?? "whole")")
            #expect(try c.write(0, new) == 2)
            #expect(try c.read(0).data == new)
        }
    }

    /// Not etcd: no write lock to be killed holding (the shared-memory coordinator's).
    @Test("killed holding the write lock with no sharer: a restart serves at once", arguments: E2E.hostStoreBackends)
    func restartAfterKillHoldingWriteLock(backend: String) throws {
        try withScope { scope in
            let hold = Hold("write-lock", in: scope)
            let first = try scope.start(backend, extraEnv: hold.environment)
            // A sharer writes what must survive (the first write lock would pause `first`), then leaves.
            let helper = try scope.start(backend)
            try helper.connect().write(0, "kept")
            try #require(try scope.dipcrm(helper.port).status == 0, "the helper sharer did not stop")
            let c = try first.connect()
            try c.send("w 0 4\nlost")
            try #require(hold.reached(), "the server never reached its write lock")
            first.kill(SIGKILL)
            try #require(first.waitGone(timeout: 5), "the server still alive after SIGKILL")
            let restarted = try scope.start(backend, port: first.port)
            let start = monotonicNow()
            let c2 = try restarted.connect()
            let (data, version) = try c2.read(0)
            let elapsed = monotonicNow() - start
            let idle = try CrashTests.idleRoundTrip(restarted)
            #expect(data == Array("kept".utf8) && version == 1, "\(String(decoding: data, as: UTF8.self)) v\(version)")
            // A reset store serves at once: no liveness interval to wait for.
            #expect(elapsed - idle < 0.5, "the first read after the restart took \(elapsed) s (idle \(idle) s)")
            #expect(try c2.write(0, "again") == 2)
        }
    }
}
