import DIPCCore
import DIPCRuntime
import DIPCTestSupport
import Glibc
import Logging
import Testing

@testable import DIPCServer

/// `ServerLifecycle`: parts start in order and stop in reverse order, exactly once,
/// whether start-up failed halfway or the server is shutting down.
@Suite struct ServerLifecycleTests {
    struct PartFailed: Error {}

    /// Parts named `names` that log "start NAME" / "stop NAME"; `failing` throws on start,
    /// `abandoning` abandons the teardown on stop.
    final class Journal {
        var entries: [String] = []

        func parts(_ names: [String], failing: String? = nil, abandoning: String? = nil) -> [LifecyclePart] {
            names.map { name in
                LifecyclePart(name, start: { [self] in
                    if name == failing { throw PartFailed() }
                    entries.append("start \(name)")
                }, stop: { [self] in
                    entries.append("stop \(name)")
                    return name == abandoning ? .abandonTeardown : .stopped
                })
            }
        }
    }

    @Test func startsInOrderAndStopsInReverseOnce() throws {
        let journal = Journal()
        let lifecycle = ServerLifecycle(journal.parts(["a", "b", "c"]))
        try lifecycle.start()
        #expect(lifecycle.stop() == .complete)
        #expect(lifecycle.stop() == .complete)
        #expect(journal.entries == ["start a", "start b", "start c", "stop c", "stop b", "stop a"])
    }

    @Test func aFailedStartStopsOnlyTheStartedPartsInReverse() throws {
        let journal = Journal()
        let lifecycle = ServerLifecycle(journal.parts(["a", "b", "c", "d"], failing: "c"))
        let failure = try #require(throws: ServerLifecycle.StartFailure.self) { try lifecycle.start() }
        #expect(failure.part == "c" && failure.error is PartFailed && failure.teardown == .complete)
        #expect(lifecycle.stop() == .complete)  // already torn down: nothing more
        #expect(journal.entries == ["start a", "start b", "stop b", "stop a"])
    }

    @Test func anAbandonedTeardownLeavesTheEarlierPartsAlone() throws {
        let journal = Journal()
        let lifecycle = ServerLifecycle(journal.parts(["a", "b", "c"], abandoning: "b"))
        try lifecycle.start()
        #expect(lifecycle.stop() == .abandoned(part: "b"))
        #expect(lifecycle.stop() == .complete)
        #expect(journal.entries == ["start a", "start b", "start c", "stop c", "stop b"])
    }

    /// The server's own parts: the accept loops start last but for the metrics endpoint,
    /// which reports on the running server (no connection is admitted before start-up is
    /// complete), and the store gate stops before the store detaches.
    @Test func theAcceptLoopsStartLastAndTheGateClosesBeforeTheStoreDetaches() throws {
        let configuration = ServerConfiguration(bindAddress: "127.0.0.1", port: 1, packetSize: 1024, maxClients: 1,
                                                ioTimeoutSeconds: 1, backendName: "memory")
        let request = LaunchRequest(configuration: configuration, storeName: "unused",
                                    geometry: StoreGeometry(mailboxes: 1, mailboxSize: 16), policy: .fifo, foreground: true)
        let parts = ServerParts(request: request, records: RecordKeeper(runtime: RuntimeDirectory(path: "/nonexistent"), port: 1),
                                logger: .init(label: "test"), openStore: { throw PartFailed() })
        let names = ServerLifecycle(parts.all).partNames
        #expect(names.suffix(2) == ["accept loops", "metrics endpoint"])
        #expect(try #require(names.firstIndex(of: "metrics listener")) < names.firstIndex(of: "runtime record")!)
        let store = try #require(names.firstIndex(of: "store"))
        let gate = try #require(names.firstIndex(of: "store gate"))
        let servingRecord = try #require(names.firstIndex(of: "serving record"))
        let listener = try #require(names.firstIndex(of: "tcp listener"))
        let record = try #require(names.firstIndex(of: "runtime record"))
        #expect(listener < record && record < store && store < gate && servingRecord < names.count - 1)
    }
}

/// The case that the old start-up order got wrong: the serving record's write fails
/// while a client is already waiting on the bound port. The server must fail without
/// ever letting that client reach the store, which the failed start-up detaches.
@Suite struct StartupRecordFailureTests {
    @Test func aFailedRecordWriteLetsNoConnectionReachTheStore() throws {
        signal(SIGPIPE, SIG_IGN)  // the failing record write gets EPIPE, as under `dipc`
        let directory = try #require(makeTemporaryDirectory())
        defer { removeTemporaryDirectory(directory) }
        let runtime = RuntimeDirectory(path: directory)
        let port = try LoopbackPort.free()
        let geometry = StoreGeometry(mailboxes: 2, mailboxSize: 64)
        let name = "lifecycle-\(getpid())-\(port)"
        defer { InMemoryBackend.destroy(name) }
        let configuration = ServerConfiguration(bindAddress: "127.0.0.1", port: port, packetSize: 4096, maxClients: 4,
                                                ioTimeoutSeconds: 5, backendName: "memory")
        let request = LaunchRequest(configuration: configuration, storeName: name, geometry: geometry, policy: .fifo,
                                    foreground: true)

        var backend: WatchedBackend?
        var client: Int32 = -1
        var saboteur: RecordWriteSaboteur?
        defer { if client >= 0 { close(client) } }
        let status = ServerLauncher.serve(request, channel: nil, runtime: runtime) {
            let store = try SharedStore.open(name: name, geometry: geometry, policy: .fifo) {
                let watched = WatchedBackend(try #require(try InMemoryBackend.open(name: name, geometry: geometry, create: true)))
                backend = watched
                return watched
            }
            // The port is bound and listening: this client waits in its backlog with a request.
            client = try connectLoopback(port: port)
            let written = Array("w 0 5\nhello".utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            #expect(written == 11)
            // The next record write (the serving record) blocks until the client has had a
            // reply or 1.5 s have passed, then fails.
            saboteur = try RecordWriteSaboteur(temporaryPath: runtime.recordPath(port: port) + ".tmp.\(getpid())",
                                               failAfterReplyOn: client, orSeconds: 1.5)
            return store
        }
        let sabotage = try #require(saboteur)
        sabotage.join()
        let watched = try #require(backend)
        defer { watched.closeForReal() }

        #expect(status == 1, "start-up should fail when the serving record cannot be written")
        #expect(sabotage.recordWriteWasBlocked, "the serving record's write never reached the sabotaged file")
        #expect(!sabotage.clientHadReply, "a client was served before start-up was complete")
        #expect(watched.detached, "the failed start-up should detach the store")
        #expect(access(runtime.recordPath(port: port), F_OK) != 0, "the failed start-up left its record behind")
        // The client's connection must be dead, not a live connection on a detached store.
        let request2 = Array("r 0\n".utf8).withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        var reply = [UInt8](repeating: 0, count: 64)
        let got = poll(&pfd, 1, 2_000) > 0 ? reply.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) } : 0
        #expect(request2 < 0 || got <= 0, "the connection answered after start-up failed: \(String(decoding: reply.prefix(max(got, 0)), as: UTF8.self))")
        #expect(watched.mailboxOperations == 0 && watched.operationsAfterDetach == 0,
                "connections used the store: \(watched.mailboxOperations) operations, \(watched.operationsAfterDetach) after detaching")
    }
}

/// An in-memory backend that counts mailbox operations, notes `close` (detach) and
/// operations after it, and keeps the memory until `closeForReal` so that a late
/// operation is counted rather than a crash.
final class WatchedBackend: BlockBackend, @unchecked Sendable {
    private let inner: BlockBackend
    private let lock = Mutex()
    private var operations = 0
    private var afterDetach = 0
    private var isDetached = false
    private var removing = false

    init(_ inner: BlockBackend) { self.inner = inner }

    var mailboxOperations: Int { lock.locked { operations } }
    var operationsAfterDetach: Int { lock.locked { afterDetach } }
    var detached: Bool { lock.locked { isDetached } }

    private func counted() {
        lock.locked {
            operations += 1
            if isDetached { afterDetach += 1 }
        }
    }

    var geometry: StoreGeometry { inner.geometry }
    var control: UnsafeMutableRawPointer { inner.control }
    var createdControl: Bool { inner.createdControl }
    var recordFields: [(String, String)] { inner.recordFields }
    var creatorIsAlive: Bool { inner.creatorIsAlive }
    func creationFinished() { inner.creationFinished() }
    func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        counted(); return try inner.readNewest(mailbox, into: &buffer)
    }
    func version(of mailbox: Int) throws -> UInt64 { counted(); return try inner.version(of: mailbox) }
    func replace(_ mailbox: Int, with data: UnsafeRawBufferPointer) throws -> UInt64 {
        counted(); return try inner.replace(mailbox, with: data)
    }
    func append(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64? { counted(); return try inner.append(mailbox, data) }
    func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? {
        counted(); return try inner.takeOldest(mailbox, into: &buffer)
    }
    func queueState(_ mailbox: Int) throws -> QueueState { counted(); return try inner.queueState(mailbox) }
    func close(removing: Bool) throws {
        lock.locked {
            isDetached = true
            self.removing = removing
        }
    }

    func closeForReal() { try? inner.close(removing: lock.locked { removing }) }
}

/// Makes the next write of a runtime record fail, at a chosen moment: a FIFO at the
/// record's temporary path, held open and full, so the writer blocks in `write`; once
/// the client has a reply or the time is up, the FIFO's only reader closes and the
/// writer gets EPIPE.
final class RecordWriteSaboteur: @unchecked Sendable {
    private let path: String
    private let fifo: Int32
    private let client: Int32
    private let seconds: Double
    private var thread = pthread_t()
    private let lock = Mutex()
    private var replied = false
    private var blocked = false

    var clientHadReply: Bool { lock.locked { replied } }
    var recordWriteWasBlocked: Bool { lock.locked { blocked } }

    init(temporaryPath: String, failAfterReplyOn client: Int32, orSeconds seconds: Double) throws {
        path = temporaryPath
        self.client = client
        self.seconds = seconds
        guard mkfifo(temporaryPath, 0o600) == 0 else { throw SystemError.last("mkfifo(\(temporaryPath))") }
        fifo = open(temporaryPath, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fifo >= 0 else { throw SystemError.last("open(\(temporaryPath))") }
        // Fill the pipe to the last byte: any write now blocks.
        var chunk = [UInt8](repeating: 0, count: 4096)
        for size in [4096, 1] {
            while chunk.withUnsafeMutableBytes({ write(fifo, $0.baseAddress, size) }) > 0 {}
        }
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let saboteur = Unmanaged<RecordWriteSaboteur>.fromOpaque(raw!).takeRetainedValue()
            saboteur.run()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<RecordWriteSaboteur>.fromOpaque(context).release()
            throw SystemError("pthread_create", errno: rc)
        }
    }

    private func run() {
        let deadline = monotonicSeconds() + seconds
        var sawReply = false
        while !sawReply, monotonicSeconds() < deadline {
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, Int32((deadline - monotonicSeconds()) * 1000) + 1) > 0 {
                var byte: UInt8 = 0
                sawReply = recv(client, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) > 0
                if !sawReply { break }  // reset or closed: no reply will come
            }
        }
        // Closing before the writer has opened the FIFO would leave its open blocked for
        // good: wait (at most 5 s more) until the FIFO is open twice, ours and the writer's.
        let writerDeadline = monotonicSeconds() + 5
        var writerArrived = fifoHasBlockedWriter()
        while !writerArrived, monotonicSeconds() < writerDeadline {
            usleep(1_000)
            writerArrived = fifoHasBlockedWriter()
        }
        lock.locked {
            replied = sawReply
            blocked = writerArrived
        }
        close(fifo)  // the only reader goes: the blocked write fails with EPIPE
    }

    /// Whether the record writer (in this process) holds the FIFO open: it is then open
    /// twice, ours and the writer's (counted through /proc/self/fd).
    private func fifoHasBlockedWriter() -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        var opens = 0
        guard let dir = opendir("/proc/self/fd") else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            var other = stat()
            if stat("/proc/self/fd/\(name)", &other) == 0, other.st_dev == st.st_dev, other.st_ino == st.st_ino { opens += 1 }
        }
        return opens >= 2
    }

    func join() { pthread_join(thread, nil) }
}

/// A pthread mutex for the test doubles above.
final class Mutex: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// A TCP connection to 127.0.0.1:`port`.
func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemError.last("socket") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let error = SystemError.last("connect")
        close(fd)
        throw error
    }
    return fd
}

func makeTemporaryDirectory() -> String? {
    var template = Array("/tmp/dipc-lifecycle-XXXXXX".utf8CString)
    return template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
}

/// Removes the directory's files, then the directory.
func removeTemporaryDirectory(_ path: String) {
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink(path + "/" + name) }
        }
        closedir(dir)
    }
    rmdir(path)
}
