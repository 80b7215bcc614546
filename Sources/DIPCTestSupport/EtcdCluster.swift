import Foundation
import Glibc
import Synchronization

/// A private etcd cluster for tests: 1 or 3 nodes on free loopback ports, data in a
/// temporary directory (under /dev/shm when it exists: etcd fsyncs every write).
///
/// It always kills what it started: `stop()`, `deinit`, and at process exit every node
/// still running (SIGKILL: SIGTERM of etcd takes seconds). Nodes can be SIGKILLed and
/// restarted on their data, and the leader found.
///
///     let cluster = try EtcdCluster(nodes: 3)
///     defer { cluster.stop() }
///     // cluster.endpoints: ["http://127.0.0.1:PORT", ...]
public final class EtcdCluster: @unchecked Sendable {
    /// One member: its ports, its data, its process while it runs.
    struct Node {
        let name: String
        let clientPort: Int
        let peerPort: Int
        let dataDirectory: String
        var pid: pid_t?
    }

    /// The temporary directory holding every node's data and log.
    public let directory: String
    private let token: String
    private let lock = NSLock()
    private var nodes: [Node]

    /// Every node's client URL, in node order.
    public var endpoints: [String] { nodes.map { "http://127.0.0.1:\($0.clientPort)" } }
    /// Node `index`'s client URL.
    public func endpoint(_ index: Int) -> String { endpoints[index] }
    /// The client port of node `index`.
    public func clientPort(_ index: Int) -> Int { nodes[index].clientPort }

    /// Whether the etcd binary is installed (`make deps` installs it).
    public static var isInstalled: Bool { binary != nil }

    static let binary: String? = ["/usr/bin/etcd", "/usr/local/bin/etcd"].first { access($0, X_OK) == 0 }

    /// Starts `count` nodes (1 or 3) and waits until the cluster answers a linearizable
    /// read, at most `seconds`. Throws `EtcdClusterError` (with the nodes' log tails)
    /// after killing whatever it started.
    public init(nodes count: Int = 1, seconds: Double = 20) throws {
        precondition(count >= 1, "a cluster has at least one node")
        guard Self.binary != nil else { throw EtcdClusterError("etcd is not installed (make deps installs etcd-server)") }
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
        var template = Array("\(base)/dipc-etcd-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw EtcdClusterError("mkdtemp in \(base): errno \(errno)") }
        let created = String(cString: made)
        directory = created
        _ = Self.directories.withLock { $0.insert(created) }
        Self.installExitHandler
        token = "dipc-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var planned: [Node] = []
        for i in 1...count {
            planned.append(Node(name: "n\(i)", clientPort: try Self.freePort(), peerPort: try Self.freePort(),
                                dataDirectory: "\(directory)/n\(i)", pid: nil))
        }
        nodes = planned
        do {
            for i in 0..<count { try launch(i, state: "new") }
            try waitHealthy(seconds: seconds)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// SIGKILLs every node and removes the data directory. Idempotent.
    public func stop() {
        for i in nodes.indices { kill(node: i) }
        _ = try? FileManager.default.removeItem(atPath: directory)
        _ = Self.directories.withLock { $0.remove(directory) }
    }

    /// SIGKILLs node `index` (no-op when it is not running) and reaps it.
    public func kill(node index: Int) {
        let pid: pid_t? = lock.withLock {
            defer { nodes[index].pid = nil }
            return nodes[index].pid
        }
        guard let pid else { return }
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        _ = Self.started.withLock { $0.remove(pid) }
    }

    /// Starts node `index` again on its data (it rejoins the cluster) and waits, at most
    /// `seconds`, until it answers a linearizable read.
    public func restart(node index: Int, seconds: Double = 20) throws {
        kill(node: index)
        try launch(index, state: "existing")
        try waitHealthy(nodes: [index], seconds: seconds)
    }

    /// Whether node `index`'s process runs.
    public func isRunning(_ index: Int) -> Bool { lock.withLock { nodes[index].pid != nil } }

    /// The index of the node that is leader now, according to the running nodes; nil
    /// when none answers or none is leader.
    public func leader() -> Int? {
        for i in nodes.indices where isRunning(i) {
            guard let output = try? Self.etcdctl(endpoint(i), ["endpoint", "status", "-w", "json"]),
                  let list = (try? JSONSerialization.jsonObject(with: Data(output.utf8))) as? [[String: Any]],
                  let status = list.first?["Status"] as? [String: Any], let header = status["header"] as? [String: Any],
                  let member = header["member_id"].map({ "\($0)" }), let leader = status["leader"].map({ "\($0)" })
            else { continue }
            if member == leader { return i }
        }
        return nil
    }

    /// Waits until each of `indices` (all running nodes by default) answers a
    /// linearizable read, at most `seconds`.
    public func waitHealthy(nodes indices: [Int]? = nil, seconds: Double = 20) throws {
        let targets = indices ?? nodes.indices.filter { isRunning($0) }
        let deadline = Date().addingTimeInterval(seconds)
        var pending = Set(targets)
        while !pending.isEmpty {
            for i in pending.sorted() {
                if (try? Self.etcdctl(endpoint(i), ["get", "health"])) != nil {
                    pending.remove(i)
                }
            }
            if pending.isEmpty { break }
            if Date() >= deadline {
                throw EtcdClusterError("etcd node(s) \(pending.sorted().map { nodes[$0].name }) not healthy after \(seconds) s; "
                    + "log tail: \(pending.sorted().map { logTail($0) }.joined(separator: " | "))")
            }
            usleep(50_000)
        }
    }

    /// The last lines of node `index`'s log, for failure messages.
    public func logTail(_ index: Int, bytes: Int = 600) -> String {
        guard let data = FileManager.default.contents(atPath: "\(nodes[index].dataDirectory).log") else { return "(no log)" }
        return String(decoding: data.suffix(bytes), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
    }

    // MARK: processes

    private func launch(_ index: Int, state: String) throws {
        let node = nodes[index]
        let cluster = nodes.map { "\($0.name)=http://127.0.0.1:\($0.peerPort)" }.joined(separator: ",")
        let arguments = [
            "--name", node.name, "--data-dir", node.dataDirectory,
            "--listen-client-urls", "http://127.0.0.1:\(node.clientPort)",
            "--advertise-client-urls", "http://127.0.0.1:\(node.clientPort)",
            "--listen-peer-urls", "http://127.0.0.1:\(node.peerPort)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(node.peerPort)",
            "--initial-cluster", cluster, "--initial-cluster-token", token, "--initial-cluster-state", state,
        ]
        let log = "\(node.dataDirectory).log"
        guard FileManager.default.createFile(atPath: log, contents: nil), let handle = FileHandle(forWritingAtPath: log) else {
            throw EtcdClusterError("cannot create \(log)")
        }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary!)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let pid = process.processIdentifier
        _ = Self.started.withLock { $0.insert(pid) }
        lock.withLock { nodes[index].pid = pid }
    }

    /// Every etcd this process started and has not killed yet.
    private static let started = Mutex<Set<pid_t>>([])

    /// The data directories of clusters not stopped yet.
    private static let directories = Mutex<Set<String>>([])

    /// Kills every node still running when the process exits (a failing test included)
    /// and removes the clusters' data.
    private static let installExitHandler: Void = {
        atexit {
            for pid in EtcdCluster.started.withLock({ $0 }) {
                _ = Glibc.kill(pid, SIGKILL)
                // Gone before its directory goes (ECHILD when Foundation reaped it first).
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            }
            for directory in EtcdCluster.directories.withLock({ $0 }) { _ = try? FileManager.default.removeItem(atPath: directory) }
        }
    }()

    private static func freePort() throws -> Int { try LoopbackPort.free() }

    // MARK: etcdctl (health and status)

    /// The keys beginning with `prefix` in the cluster at `endpoints` (`URL,URL,...`), by
    /// a linearizable `etcdctl get --prefix --keys-only`; throws when none answers within
    /// a second.
    public static func keys(endpoints: String, prefix: String) throws -> [String] {
        try etcdctl(endpoints, ["get", "--prefix", "--keys-only", prefix]).split(separator: "\n").map(String.init)
    }

    static let etcdctlBinary: String = (["/usr/bin/etcdctl", "/usr/local/bin/etcdctl"] as [String]).first { access($0, X_OK) == 0 } ?? "etcdctl"

    /// Runs `etcdctl --endpoints ENDPOINT ARGS` (a linearizable request, 1 s at most);
    /// its stdout when it exits 0, else throws.
    static func etcdctl(_ endpoint: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: etcdctlBinary)
        process.arguments = ["--endpoints", endpoint, "--command-timeout=1s", "--dial-timeout=1s"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["ETCDCTL_API"] = "3"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw EtcdClusterError("etcdctl \(arguments) on \(endpoint) failed") }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Why a test cluster could not be started or used.
public struct EtcdClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
