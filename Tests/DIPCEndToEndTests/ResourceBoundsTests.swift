import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §3 "Resources": a server's threads, descriptors and staging memory are set by
/// its limits (`--max-clients`, `--max-staging-mb`), never by what clients do; and
/// shared memory that another process corrupted gives `err internal`, never a crash.
/// Peaks are sampled from /proc every 10 ms (`ResourceSampler`).
@Suite("resource bounds", .serialized)
struct ResourceBoundsTests {
    // MARK: connections

    @Test("a connection flood on --max-clients 32: threads and descriptors within the bounds; a client served within 2 s after")
    func connectionFlood() throws {
        try withServer("sysv", options: ["--max-clients", "32"]) { server, _ in
            try checkFlood(on: server, maxClients: 32) {
                guard let client = try? server.connect(timeout: 1), let reply = try? client.request("i") else { return false }
                return reply.hasPrefix("ok ")
            }
        }
    }

    @Test("a connection flood on a TLS port (clients that never handshake): the same bounds, and a TLS client served after",
          .requires(.openssl))
    func connectionFloodOverTLS() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start("sysv", options: certificates.serverOptions(mutual: false) + ["--max-clients", "32", "--io-timeout", "2"])
            try checkFlood(on: server, maxClients: 32) {
                (try? certificates.sClient(port: server.port, input: "r 0\n"))?.out.hasPrefix("ok 0 0") == true
            }
        }
    }

    /// Floods `server` from three threads for 3 s, connections held open and unread, and
    /// checks the peak threads and descriptors against SPEC's bounds, and that `served`
    /// (one client's request) succeeds within 2 s after the flood.
    private func checkFlood(on server: Server, maxClients: Int, served: () -> Bool) throws {
        let sampler = ResourceSampler(pid: server.pid)
        defer { sampler.stop() }
        let floodSeconds = 3.0
        let connections = Locked(0)
        let port = server.port
        // Three flooders connect as fast as they can and leave every connection open
        // and unread (up to 300 each, then the oldest is closed).
        let flooded = runThreads(3, timeout: floodSeconds + 30) { _ in
            var held: [Int32] = []
            let end = monotonicNow() + floodSeconds
            while monotonicNow() < end {
                let fd = rawConnect(port)
                if fd >= 0 {
                    held.append(fd)
                    connections.withValue { $0 += 1 }
                }
                if held.count > 300 { close(held.removeFirst()) }
            }
            for fd in held { close(fd) }
        }
        try #require(flooded, "the flooders did not finish")
        let floodEnded = monotonicNow()
        var servedAfter: Double? = nil
        while servedAfter == nil && monotonicNow() < floodEnded + 2 {
            if served() {
                servedAfter = monotonicNow() - floodEnded
            } else {
                usleep(10_000)
            }
        }
        let peak = sampler.stop()
        try #require(connections.get > 10 * maxClients, "only \(connections.get) connections: not a flood")
        #expect(servedAfter != nil, "no client served within 2 s after the flood")
        #expect(peak.threads < maxClients + 32, "peak \(peak) after \(connections.get) connections")
        #expect(peak.descriptors < maxClients + 64, "peak \(peak) after \(connections.get) connections")
        #expect(server.isAlive)
    }

    @Test("200 slowloris connections with --io-timeout 2: each answered err timeout and closed in time; threads back to baseline")
    func slowloris() throws {
        try withServer("sysv", options: ["--io-timeout", "2"]) { server, _ in
            let baseline = try #require(ProcessResources.ownedBy(server.pid))
            var clients: [(conn: Conn, sentAt: Double)] = []
            for index in 0..<200 {
                let conn = try server.connect(timeout: 10)
                // Half stall in a header, half in a write's data.
                try conn.send(index % 2 == 0 ? "r 1" : "w 0 100\nabc")
                clients.append((conn, monotonicNow()))
            }
            for (conn, sentAt) in clients {
                let reply = try conn.readLine()
                let after = monotonicNow() - sentAt
                #expect(reply.hasPrefix("err timeout"), "reply \(reply)")
                #expect(after > 1.9, "answered \(after) s after the last byte, before --io-timeout 2")
                #expect(conn.waitForClose(timeout: 3) == .closed)
            }
            let lastAnswered = monotonicNow() - clients[clients.count - 1].sentAt
            #expect(lastAnswered < 2 + 4, "the last connection was answered \(lastAnswered) s after its last byte")
            let settled = waitUntil(timeout: 5) {
                guard let now = ProcessResources.ownedBy(server.pid) else { return false }
                return now.threads <= baseline.threads && now.descriptors <= baseline.descriptors
            }
            #expect(settled, "baseline \(baseline), now \(ProcessResources.of(server.pid).map(String.init(describing:)) ?? "gone")")
        }
    }

    // MARK: staging memory

    @Test("--max-staging-mb 64, eight stalled 15 MiB writes: VmRSS grows by at most the budget and 16 MiB; all eight acknowledged once the writers finish")
    func stagingBudget() throws {
        let ioTimeout = 2.0
        try withServer("sysv", mailboxes: 8, mailboxKB: 16 * 1024, packetKB: 64,
                       options: ["--max-staging-mb", "64", "--io-timeout", "\(Int(ioTimeout))"]) { server, _ in
            let before = try #require(ProcessResources.of(server.pid))
            let sampler = ResourceSampler(pid: server.pid)
            defer { sampler.stop() }
            let length = 15 << 20
            let tailLength = 32
            let port = server.port
            let start = monotonicNow()
            // The admitted writers keep their requests alive (a byte every 250 ms, within
            // --io-timeout) until then; the others wait unread meanwhile, longer than --io-timeout.
            let stallEnds = start + ioTimeout + 1.5
            let stalledPeak = Locked<ProcessResources?>(nil)
            let outcomes = Locked<[(reply: String, waited: Double)]>([])
            let finished = runThreads(8, timeout: 90) { index in
                do {
                    let conn = try Conn(port: port, timeout: 60)
                    let sentAt = monotonicNow()
                    try conn.send(Array("w \(index) \(length)\n".utf8) + [UInt8](repeating: UInt8(index), count: length - tailLength))
                    let waited = monotonicNow() - sentAt
                    var tail = [UInt8](repeating: UInt8(index), count: tailLength)
                    while monotonicNow() < stallEnds && tail.count > 1 {
                        usleep(250_000)
                        try conn.send([tail.removeLast()])
                    }
                    // The first writer here ends the stall: no write has completed yet.
                    stalledPeak.withValue { if $0 == nil { $0 = sampler.peak.resources } }
                    try conn.send(tail)
                    let reply = try conn.readLine()
                    outcomes.withValue { $0.append((reply, waited)) }
                } catch {
                    outcomes.withValue { $0.append(("\(error)", 0)) }
                }
            }
            try #require(finished, "the writers did not finish")
            let peak = try #require(stalledPeak.get)
            let growth = peak.residentBytes - before.residentBytes
            #expect(growth <= (64 + 16) << 20, "VmRSS \(before.residentBytes >> 20) MiB before, \(peak.residentBytes >> 20) MiB while stalled")
            let results = outcomes.get
            #expect(results.count == 8 && results.allSatisfy { $0.reply.hasPrefix("ok ") }, "\(results.map(\.reply))")
            let waitedLong = results.filter { $0.reply.hasPrefix("ok ") && $0.waited > ioTimeout }
            #expect(!waitedLong.isEmpty, "no acknowledged write waited longer than --io-timeout: \(results.map(\.waited))")
        }
    }

    @Test("the default budget admits a whole 64 MiB mailbox; a budget below one mailbox is raised to one")
    func budgetAdmitsOneMailbox() throws {
        let cases: [(mailboxKB: Int, options: [String])] = [(64 * 1024, []), (2 * 1024, ["--max-staging-mb", "1"])]
        for (mailboxKB, options) in cases {
            try withServer("sysv", mailboxes: 1, mailboxKB: mailboxKB, packetKB: 64, options: options) { server, _ in
                let conn = try server.connect(timeout: 60)
                let value = [UInt8](repeating: 7, count: mailboxKB * 1024)
                #expect(try conn.write(0, value) == 1, "\(options)")
                #expect(try conn.request("w 0\nnetcat form") == "ok 2", "\(options)")
            }
        }
    }

    // MARK: corrupted shared memory

    @Test("corrupted lengths in a sysv store: err internal and a log line, never a crash; other mailboxes keep being served")
    func corruptedStore() throws {
        try withServer("sysv") { server, scope in
            let conn = try server.connect()
            // Distinct values, so that each is found in the segment by its bytes.
            let values = (0..<4).map { Array("mailbox \($0) of pid \(getpid()) port \(server.port)".utf8) }
            for (mailbox, value) in values.enumerated() { _ = try conn.write(mailbox, value) }
            let id = try #require(server.shmID)
            let segment = try #require(SharedSegmentView(id: id))
            defer { segment.detach() }
            // docs/ARCHITECTURE.md "Mailbox blocks": a slot is [used|count|lastOffset|reserved]
            // (32 bytes), then its data [len u64][bytes]; a written mailbox holds one message.
            let message1 = try #require(segment.messageOffset(of: values[1]))
            segment.store(UInt64(1) << 62, at: message1)  // mailbox 1: the message's length
            let message2 = try #require(segment.messageOffset(of: values[2]))
            segment.store(UInt64.max, at: message2 - 32)  // mailbox 2: the slot's `used`

            for request in ["r 1", "c 1", "r 2", "c 2", "p 2 1\nx"] {
                let reply = try conn.request(request)
                #expect(reply.hasPrefix("err internal") && reply.contains("corrupt"), "\(request): \(reply)")
            }
            #expect(try conn.read(0).data == values[0])
            #expect(try conn.read(3).data == values[3])
            #expect(try server.connect().read(3).data == values[3])
            // A write replaces the corrupt slot with a good one.
            _ = try conn.write(1, "fresh")
            #expect(try conn.read(1).data == Array("fresh".utf8))
            let log = scope.runtimeDir + "/dipc-\(server.port).log"
            #expect(waitUntil(timeout: 5) { (try? String(contentsOfFile: log, encoding: .utf8))?.contains("mailbox 2 has a corrupt block") == true },
                    "no log line about the corrupt block in \(log)")
            #expect(server.isAlive)
        }
    }
}

/// A System V segment attached by the test, to corrupt a store as another process could.
private struct SharedSegmentView {
    let base: UnsafeMutableRawPointer
    let size: Int

    init?(id: Int32) {
        var status = shmid_ds()
        guard shmctl(id, IPC_STAT, &status) == 0, let address = shmat(id, nil, 0), Int(bitPattern: address) != -1
        else { return nil }
        base = address
        size = Int(status.shm_segsz)
    }

    func detach() { _ = shmdt(base) }

    /// The offset of the length field of the one message holding exactly `value`.
    func messageOffset(of value: [UInt8]) -> Int? {
        var found: [Int] = []
        value.withUnsafeBytes { needle in
            var offset = 8
            while offset + needle.count <= size {
                if memcmp(base + offset, needle.baseAddress!, needle.count) == 0,
                   base.loadUnaligned(fromByteOffset: offset - 8, as: UInt64.self) == UInt64(needle.count) {
                    found.append(offset - 8)
                }
                offset += 1
            }
        }
        return found.count == 1 ? found[0] : nil
    }

    func store(_ word: UInt64, at offset: Int) {
        base.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
    }
}
