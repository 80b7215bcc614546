import DIPCTestSupport
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A server started by a test, with what its runtime record says.
final class Server {
    let port: Int
    let backend: String
    let name: String
    /// The one line `dipc` printed on stdout.
    let startLine: String
    let record: [String: String]

    init(port: Int, backend: String, name: String, startLine: String, record: [String: String]) {
        self.port = port
        self.backend = backend
        self.name = name
        self.startLine = startLine
        self.record = record
    }

    var pid: pid_t { pid_t(record["pid"] ?? "") ?? -1 }
    var startTime: String? { record["start_time"] }
    var shmID: Int32? { record["shm_id"].flatMap { Int32($0) } }
    var shmName: String? { record["shm_name"].flatMap { $0.isEmpty ? nil : $0 } }
    var db: String? { record["db"].flatMap { $0.isEmpty ? nil : $0 } }
    var isAlive: Bool { processIsAlive(pid, startTime: startTime) }

    func connect(timeout: Double = E2E.replyTimeout) throws -> Conn { try Conn(port: port, timeout: timeout) }

    /// The `i` reply's fields.
    func info() throws -> (line: String, fields: [String: String]) {
        let c = try connect()
        let line = try c.request("i")
        return (line, keyValues(line))
    }

    /// What of this server's store still exists beside the data: its IPC objects, or on
    /// etcd the keys that live with a server (`s/` its registration, `l/` places in
    /// line, both on its lease; the mailboxes stay, SPEC §4).
    func storeObjects() -> [String] {
        guard backend == "etcd" else { return IPC.storeObjects(name: name, shmName: shmName, shmID: shmID) }
        guard let endpoints = record["etcd"] else { return ["etcd server \(port) without etcd= in its record"] }
        do {
            return try ["s/", "l/"].flatMap { try EtcdCluster.keys(endpoints: endpoints, prefix: "dipc/\(name)/\($0)") }
                .map { "etcd key \($0)" }
        } catch {
            return ["etcd at \(endpoints) not asked: \(error)"]
        }
    }

    func kill(_ signal: Int32) {
        if isAlive { Glibc.kill(pid, signal) }
    }

    /// Waits until the process is gone (zombies count as gone).
    @discardableResult
    func waitGone(timeout: Double = 10) -> Bool { waitUntil(timeout: timeout) { !isAlive } }
}

/// One test's private world: a temp dir with DIPC_RUNTIME_DIR and DIPC_STATE_DIR, unique store
/// names, and everything started in it. `cleanup()` removes all of it (and nothing else).
final class Scope {
    private static let counter = Atomic<Int>(0)

    let tag: String
    let dir: String
    let runtimeDir: String
    let stateDir: String
    let env: [String: String]
    private(set) var names: [String] = []
    private(set) var servers: [Server] = []
    private var knownPIDs: [(pid_t, String?)] = []
    private var knownSHMNames: Set<String> = []
    private var knownSHMIDs: Set<Int32> = []
    private var nameCounter = 0

    init() {
        Scope.sweepAbandonedRuns
        let n = Scope.counter.wrappingAdd(1, ordering: .relaxed).newValue
        tag = "e2e\(getpid())n\(String(format: "%04d", n))"
        dir = NSTemporaryDirectory() + "dipc-" + tag
        runtimeDir = dir + "/run"
        stateDir = dir + "/state"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var env = ProcessInfo.processInfo.environment
        env["DIPC_RUNTIME_DIR"] = runtimeDir
        env["DIPC_STATE_DIR"] = stateDir
        self.env = env
    }

    /// A fresh store name unique to this test (pid + counter, fixed width so no name is a
    /// prefix of another).
    func newName() -> String {
        nameCounter += 1
        let n = tag + "s\(nameCounter)"
        names.append(n)
        return n
    }

    /// Makes `cleanup()` treat `name` as this scope's own store name.
    func adopt(name: String) { names.append(name) }

    /// The scope's first store name.
    lazy var name: String = newName()

    func recordPath(_ port: Int) -> String { runtimeDir + "/dipc-\(port).record" }

    func readRecord(_ port: Int) -> [String: String]? {
        guard let text = try? String(contentsOfFile: recordPath(port), encoding: .utf8) else { return nil }
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if let eq = line.firstIndex(of: "=") {
                out[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
        }
        return out
    }

    private func remember(_ record: [String: String]) {
        if let p = record["pid"].flatMap({ pid_t($0) }) { knownPIDs.append((p, record["start_time"])) }
        if let s = record["shm_name"], !s.isEmpty { knownSHMNames.insert(s) }
        if let i = record["shm_id"].flatMap({ Int32($0) }) { knownSHMIDs.insert(i) }
    }

    // MARK: running the commands

    /// Runs `dipc ARGS` (detaching form) to completion; `extraEnv` adds to the scope's environment.
    func dipc(_ args: [String], timeout: Double = E2E.startTimeout, extraEnv: [String: String] = [:]) throws -> ProcessResult {
        let r = try runProcess(
            try Binaries.path("dipc"), args, env: env.merging(extraEnv) { $1 }, timeout: timeout)
        rememberRecords()
        return r
    }

    /// Spawns `dipc ARGS` without waiting (for `--foreground`).
    func spawnDipc(_ args: [String]) throws -> ChildProcess {
        try ChildProcess(try Binaries.path("dipc"), args, env: env)
    }

    func dipcrm(_ args: [String], timeout: Double = E2E.stopTimeout) throws -> ProcessResult {
        rememberRecords()
        return try runProcess(try Binaries.path("dipcrm"), args, env: env, timeout: timeout)
    }

    func dipcrm(_ port: Int) throws -> ProcessResult { try dipcrm(["\(port)"]) }

    func client(_ args: [String], stdin: [UInt8]? = nil) throws -> ProcessResult {
        try runProcess(try Binaries.path("dipc-client"), args, env: env, stdin: stdin, timeout: E2E.clientTimeout)
    }

    /// The arguments of `dipc [--backend B --name NAME] OPTIONS MAILBOXES KB PORT PACKET`;
    /// for etcd without an `--etcd` of its own, also `--etcd` of the shared test node
    /// (`SharedEtcd`, started on first use; throws when it cannot be started).
    static func arguments(
        backend: String?, name: String?, options: [String], mailboxes: Int, mailboxKB: Int, port: Int, packetKB: Int
    ) throws -> [String] {
        var args: [String] = []
        if let backend { args += ["--backend", backend] }
        if let name { args += ["--name", name] }
        return args + (try SharedEtcd.options(backend: backend, options))
            + ["\(mailboxes)", "\(mailboxKB)", "\(port)", "\(packetKB)"]
    }

    /// Starts a server and requires success: exit 0, one line on stdout, a runtime record.
    @discardableResult
    func start(
        _ backend: String, name: String? = nil, mailboxes: Int = 4, mailboxKB: Int = 4, packetKB: Int = 1,
        port: Int? = nil, options: [String] = [], extraEnv: [String: String] = [:]
    ) throws -> Server {
        let port = try port ?? freePort()
        let name = name ?? self.name
        let args = try Scope.arguments(
            backend: backend, name: name, options: options, mailboxes: mailboxes, mailboxKB: mailboxKB,
            port: port, packetKB: packetKB)
        let r = try dipc(args, extraEnv: extraEnv)
        guard r.status == 0, !r.timedOut else { throw E2EError("server did not start: \(r)") }
        var record: [String: String]? = nil
        waitUntil(timeout: 3) {
            record = readRecord(port)
            return record?["pid"] != nil
        }
        guard let record else {
            throw E2EError("dipc exited 0 but left no runtime record at \(recordPath(port)): \(r)")
        }
        let server = Server(
            port: port, backend: backend, name: name,
            startLine: r.out.hasSuffix("\n") ? String(r.out.dropLast()) : r.out, record: record)
        remember(record)
        servers.append(server)
        return server
    }

    /// Records of every server this scope's runtime dir knows about.
    private func rememberRecords() {
        for port in recordedPorts() { if let r = readRecord(port) { remember(r) } }
    }

    func recordedPorts() -> [Int] { Scope.recordedPorts(in: runtimeDir) }

    /// Ports with a record in runtime directory `dir`.
    static func recordedPorts(in dir: String) -> [Int] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return files.compactMap { f in
            // dipc-PORT.record, or dipc-PORT.crashed-PID.record (a crashed server's, kept)
            guard f.hasPrefix("dipc-"), f.hasSuffix(".record") else { return nil }
            return Int(f.dropFirst(5).dropLast(7).prefix(while: { $0 != "." }))
        }
    }

    /// Once per test process: cleans up after earlier runs of this suite whose test
    /// process died before its scopes could (a crash leaves its servers running). Every
    /// `dipc-e2ePIDn…` directory whose process is gone has its servers stopped by
    /// `dipcrm` (which also removes their stores) and is then removed.
    private static let sweepAbandonedRuns: Void = {
        let tmp = NSTemporaryDirectory()
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] where entry.hasPrefix("dipc-e2e") {
            guard let pid = pid_t(entry.dropFirst("dipc-e2e".count).prefix(while: \.isNumber)), pid != getpid(),
                  !processIsAlive(pid) else { continue }
            let dir = tmp + entry
            var env = ProcessInfo.processInfo.environment
            env["DIPC_RUNTIME_DIR"] = dir + "/run"
            env["DIPC_STATE_DIR"] = dir + "/state"
            for port in Set(recordedPorts(in: dir + "/run")) {
                if let dipcrm = try? Binaries.path("dipcrm") {
                    _ = try? runProcess(dipcrm, ["\(port)"], env: env, timeout: E2E.stopTimeout)
                }
            }
            try? FileManager.default.removeItem(atPath: dir)
        }
    }()

    // MARK: cleanup

    /// Stops everything this scope started and removes only its own IPC objects and files.
    func cleanup() {
        rememberRecords()
        var ports = Set(servers.map(\.port))
        ports.formUnion(recordedPorts())
        for port in ports.sorted() {
            let rec = readRecord(port)
            let alive = rec.flatMap { r in r["pid"].flatMap { pid_t($0) }.map { processIsAlive($0, startTime: r["start_time"]) } } ?? false
            if rec != nil || alive || servers.contains(where: { $0.port == port && $0.isAlive }) {
                _ = try? dipcrm(port)
            }
        }
        for (pid, start) in knownPIDs where processIsAlive(pid, startTime: start) {
            Glibc.kill(pid, SIGKILL)
        }
        // Any process that carries this scope's private runtime dir is ours.
        for pid in processesMatching(environment: "DIPC_RUNTIME_DIR=\(runtimeDir)", argument: nil) {
            Glibc.kill(pid, SIGKILL)
        }
        waitUntil(timeout: 3) { knownPIDs.allSatisfy { !processIsAlive($0.0, startTime: $0.1) } }

        let keys = Set(names.map(IPC.key))
        let ourPIDs = Set(knownPIDs.map(\.0))
        for seg in IPC.segments()
        where keys.contains(seg.key) || (knownSHMIDs.contains(seg.id) && ourPIDs.contains(seg.creator)) {
            _ = shmctl(seg.id, IPC_RMID, nil)
        }
        for sem in IPC.semaphores() where keys.contains(sem.key) {
            if let ipcrm = ["/usr/bin/ipcrm", "/bin/ipcrm"].first(where: FileManager.default.isExecutableFile) {
                _ = try? runProcess(ipcrm, ["-s", "\(sem.id)"], env: env, timeout: 5)
            }
        }
        for n in names { for p in IPC.devShm(containing: n) { unlink(p) } }
        for s in knownSHMNames { unlink(IPC.devShmPath(s)) }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

/// Runs `body` in a fresh scope and always cleans up, whatever `body` does.
func withScope<T>(_ body: (Scope) throws -> T) throws -> T {
    let scope = Scope()
    defer { scope.cleanup() }
    return try body(scope)
}

/// A scope with one started server (4 mailboxes of 4 KiB, 1 KiB packets unless told otherwise).
func withServer<T>(
    _ backend: String, mailboxes: Int = 4, mailboxKB: Int = 4, packetKB: Int = 1, options: [String] = [],
    _ body: (Server, Scope) throws -> T
) throws -> T {
    try withScope { scope in
        let s = try scope.start(
            backend, mailboxes: mailboxes, mailboxKB: mailboxKB, packetKB: packetKB, options: options)
        return try body(s, scope)
    }
}

/// What is left of a stopped server: record, process, listener, store objects.
func leftovers(of server: Server, in scope: Scope, includingStore: Bool = true) -> [String] {
    var out: [String] = []
    if IPC.exists(scope.recordPath(server.port)) { out.append("record \(scope.recordPath(server.port))") }
    if server.isAlive { out.append("process \(server.pid)") }
    if portAccepts(server.port) { out.append("port \(server.port) still accepts") }
    if includingStore { out += server.storeObjects() }
    return out
}

/// Runs `count` threads of `body(index)` and waits for all with a deadline.
func runThreads(_ count: Int, timeout: Double, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let t = Thread {
            body(i)
            group.leave()
        }
        t.start()
    }
    return group.wait(timeout: .now() + timeout) == .success
}

/// A lock-protected box for collecting results from threads.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ value: T) { self.value = value }
    func withValue<R>(_ f: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return f(&value)
    }
    var get: T { withValue { $0 } }
}
