import DIPCClient
import DIPCCore
import Glibc
import Synchronization

/// A random r/w/p/c workload against servers that share one store, recorded into an
/// `OperationHistory` for `LinearizabilityChecker`, with faults injected on schedule.
/// Backend-agnostic: it only talks the wire protocol to the endpoints it is given
/// (local servers sharing a store, dipc servers on etcd, ...).
///
/// Contract of `run()`:
/// 1. Set-up (not recorded): each queue mailbox is drained and each mailbox read, so the
///    history starts from known states (`OperationHistory.initialStates`); queues start
///    empty. Nothing else may use these mailboxes until `run()` returns.
/// 2. `clientsPerEndpoint` clients per endpoint, one thread and one connection each
///    (client i starts on endpoint i mod n), send random requests for `seconds`:
///    on a register mailbox `w` (1/2), `r` (1/4) or a watch (1/4: `r N V WAIT_MS` from
///    the highest VERSION this client saw there), on a queue `p` or `c` (even odds;
///    `c` waits a random element of `takeWaitsMilliseconds`). Values are unique, also
///    across runs on a store that persists: `RUN:c<client>-<sequence>` (RUN random per
///    run) plus random padding up to `maxPadding` bytes.
///    Every request is recorded (`HistoryRecorder`): `ok` as acknowledged, `err empty`
///    as empty, `err unavailable ... outcome unknown`, `err internal`, a dropped
///    connection or a protocol violation as unknown outcome, any other `err` as failed.
///    A client whose connection drops reconnects to the same endpoint; it moves to the
///    next one when it cannot connect (a killed server) or is answered
///    `err unavailable` (a server cut off from its store).
/// 3. Meanwhile, on the calling thread, each fault runs once at its time (seconds after
///    the clients started, in order), and not before its clients have made the progress
///    it asks for (`Fault.afterAcknowledgedPerClient`); what it throws is kept in
///    `Run.faultErrors`.
///    The clients stop `seconds` after they started, but never sooner after the last
///    fault than scheduled (a fault that ran late on a loaded machine still gets the
///    run it was meant to have after it).
/// 4. Once every client has stopped (an in-flight request ends within
///    `requestTimeoutSeconds` plus its wait), one more client (id = number of clients)
///    drains every queue with recorded `c` until `err empty`, and reads every register
///    once, through whichever endpoint answers.
public struct HistoryWorkload: Sendable {
    /// One server to send requests to.
    public struct Endpoint: Sendable, Equatable {
        public var host: String
        public var port: Int
        public init(host: String = "127.0.0.1", port: Int) {
            self.host = host
            self.port = port
        }
    }

    /// Something done to the system under test at a given time (kill a server, cut a
    /// link, heal it). `inject` may block; the next fault waits for it.
    public struct Fault: Sendable {
        public var name: String
        /// Seconds after the clients started.
        public var at: Double
        /// The fault also waits, past `at`, until every client has had this many
        /// acknowledged operations (so a run on a slow or loaded machine, e.g. under a
        /// sanitizer, still has the history before the fault that it was meant to
        /// have); it runs anyway after `readinessTimeout` seconds of waiting.
        public var afterAcknowledgedPerClient: Int
        public var inject: @Sendable () throws -> Void
        public init(
            _ name: String, at: Double, afterAcknowledgedPerClient: Int = 0,
            inject: @escaping @Sendable () throws -> Void
        ) {
            self.name = name
            self.at = at
            self.afterAcknowledgedPerClient = afterAcknowledgedPerClient
            self.inject = inject
        }
    }

    /// The longest a fault waits for its `afterAcknowledgedPerClient`.
    public static let readinessTimeout: Double = 30

    /// What a run did.
    public struct Run: Sendable {
        public var history: OperationHistory
        /// The faults that ran, as "NAME at T s".
        public var faultsInjected: [String]
        /// Faults that threw, with what they threw.
        public var faultErrors: [String]
        /// Connection attempts that failed (clients and drainer).
        public var failedConnects: Int
        /// True when every queue was found empty at the end (so draining can be checked).
        public var drained: Bool
        /// Monotonic nanoseconds (the history's clock) at which each fault ran.
        public var faultTimes: [UInt64]

        /// Checks the history, expecting drained queues when draining succeeded.
        public func check() -> LinearizabilityChecker.Report {
            LinearizabilityChecker.check(history, expectDrainedQueues: drained)
        }
    }

    public var endpoints: [Endpoint]
    public var registers: [Int]
    public var queues: [Int]
    public var clientsPerEndpoint: Int = 3
    public var seconds: Double = 3
    public var seed: UInt64 = 1
    public var faults: [Fault] = []
    /// Each `c`'s WAIT_MS is chosen among these.
    public var takeWaitsMilliseconds: [Int] = [0, 0, 0, 20]
    /// WAIT_MS of watches (`r N VERSION WAIT_MS` from the highest VERSION the client saw
    /// there); 0: no watches, plain reads instead.
    public var watchWaitMilliseconds: Int = 20
    public var maxPadding: Int = 48
    /// Bound on one request's send and reply (DIPCConnection's timeout).
    public var requestTimeoutSeconds: Double = 10

    public init(endpoints: [Endpoint], registers: [Int], queues: [Int]) {
        self.endpoints = endpoints
        self.registers = registers
        self.queues = queues
    }

    /// Runs the workload (see the type's contract). Throws only when set-up finds no
    /// endpoint answering.
    public func run() throws -> Run {
        precondition(!endpoints.isEmpty, "HistoryWorkload needs at least one endpoint")
        precondition(Set(registers).isDisjoint(with: queues), "a mailbox is either a register or a queue")
        let recorder = HistoryRecorder()
        try prepare(recorder)

        let clients = endpoints.count * clientsPerEndpoint
        let start = recorder.now()
        let stopped = StopFlag()
        let runTag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let threads = (0..<clients).map { client in
            SpawnedThread { [self] in runClient(client, runTag: runTag, recorder: recorder, until: stopped) }
        }
        var injected: [String] = [], errors: [String] = [], times: [UInt64] = []
        var stop = start + nanoseconds(seconds)
        for fault in faults.sorted(by: { $0.at < $1.at }) {
            sleep(until: start + nanoseconds(fault.at), recorder: recorder)
            waitForAcknowledged(fault.afterAcknowledgedPerClient, clients: clients, recorder: recorder)
            let at = recorder.now()
            times.append(at)
            injected.append("\(fault.name) at \(seconds(at - start)) s")
            do { try fault.inject() } catch { errors.append("\(fault.name): \(error)") }
            stop = max(stop, at + nanoseconds(seconds - fault.at))
        }
        sleep(until: stop, recorder: recorder)
        stopped.set()
        var failedConnects = threads.map { $0.join() }.reduce(0, +)

        let (drained, drainerFailures) = drain(client: clients, recorder: recorder)
        failedConnects += drainerFailures
        return Run(
            history: recorder.history(), faultsInjected: injected, faultErrors: errors,
            failedConnects: failedConnects, drained: drained, faultTimes: times)
    }

    // MARK: set-up and the final drain

    /// Empties every queue and records each mailbox's state, unrecorded.
    private func prepare(_ recorder: HistoryRecorder) throws {
        var lastError: Error? = nil
        for endpoint in endpoints {
            do {
                let connection = try connect(endpoint)
                defer { connection.close() }
                for queue in queues {
                    while true {
                        do { _ = try connection.consume(queue) } catch DIPCClientError.server(code: "empty", _) { break }
                    }
                }
                for mailbox in registers + queues {
                    let message = try connection.read(mailbox)
                    let value = queues.contains(mailbox) ? "" : String(decoding: message.data, as: UTF8.self)
                    recorder.setInitialState(.init(value: value, version: message.version), of: mailbox)
                }
                return
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    /// Takes from every queue until `err empty`, then reads every register, all
    /// recorded as `client`. Returns whether every queue was found empty, and the
    /// failed connection attempts.
    private func drain(client: Int, recorder: HistoryRecorder) -> (Bool, Int) {
        var session = ClientSession(workload: self, endpointIndex: 0)
        let deadline = recorder.now() + nanoseconds(max(30, 3 * requestTimeoutSeconds))
        var drained = true
        for queue in queues {
            var found = false
            while !found && recorder.now() < deadline {
                guard let connection = session.connection() else { continue }
                found = session.perform(.take, mailbox: queue, client: client, argument: nil, wait: 0, on: connection, recorder: recorder) == .empty
            }
            drained = drained && found
        }
        for register in registers {
            var done = false
            while !done && recorder.now() < deadline {
                guard let connection = session.connection() else { continue }
                if case .ok = session.perform(.read, mailbox: register, client: client, argument: nil, wait: 0, on: connection, recorder: recorder) { done = true }
            }
        }
        return (drained, session.failedConnects)
    }

    // MARK: clients

    /// One client's loop; returns its failed connection attempts.
    private func runClient(_ client: Int, runTag: String, recorder: HistoryRecorder, until stopped: StopFlag) -> Int {
        var random = SplitMix64(seed: seed &+ UInt64(client) &* 0x9E37_79B9)
        var session = ClientSession(workload: self, endpointIndex: client % endpoints.count)
        let mailboxes = registers + queues
        var sequence = 0
        /// The highest VERSION this client saw per register: where its watches start.
        var seen: [Int: UInt64] = [:]
        while !stopped.isSet {
            guard let connection = session.connection() else { continue }
            let mailbox = mailboxes[Int(random.next() % UInt64(mailboxes.count))]
            let draw = random.next() % 4
            let kind: HistoryOperation.Kind
            if registers.contains(mailbox) {
                kind = draw < 2 ? .write : (draw == 2 || watchWaitMilliseconds == 0 ? .read : .watch)
            } else {
                kind = draw < 2 ? .push : .take
            }
            var argument: String? = nil
            if kind == .watch { argument = "\(seen[mailbox] ?? 0) \(watchWaitMilliseconds)" }
            if kind == .write || kind == .push {
                sequence += 1
                let padding = maxPadding > 0 ? Int(random.next() % UInt64(maxPadding + 1)) : 0
                argument = "\(runTag):c\(client)-\(sequence)" + (padding > 0 ? "." + String(repeating: "x", count: padding) : "")
            }
            let wait = kind == .take ? takeWaitsMilliseconds[Int(random.next() % UInt64(takeWaitsMilliseconds.count))] : 0
            let result = session.perform(
                kind, mailbox: mailbox, client: client, argument: argument, wait: kind == .watch ? watchWaitMilliseconds : wait,
                after: seen[mailbox] ?? 0, on: connection, recorder: recorder)
            if case .ok(_, let version) = result, registers.contains(mailbox) { seen[mailbox] = max(seen[mailbox] ?? 0, version) }
        }
        session.close()
        return session.failedConnects
    }

    fileprivate func connect(_ endpoint: Endpoint) throws -> DIPCConnection {
        try DIPCConnection(host: endpoint.host, port: endpoint.port, timeoutSeconds: requestTimeoutSeconds)
    }

    private func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, seconds) * 1e9) }
    private func seconds(_ nanoseconds: UInt64) -> String {
        let tenths = nanoseconds / 10_000_000
        return "\(tenths / 100).\(tenths % 100 < 10 ? "0" : "")\(tenths % 100)"
    }

    /// Waits (at most `readinessTimeout`) until each of `clients` has had `count`
    /// acknowledged operations.
    private func waitForAcknowledged(_ count: Int, clients: Int, recorder: HistoryRecorder) {
        guard count > 0 else { return }
        let deadline = recorder.now() + nanoseconds(Self.readinessTimeout)
        while recorder.now() < deadline {
            let acknowledged = recorder.acknowledgedPerClient()
            if (0..<clients).allSatisfy({ acknowledged[$0, default: 0] >= count }) { return }
            ignoringFailure("waking early only re-checks the counts") { usleep(10_000) }
        }
    }

    /// Sleeps until the recorder's clock reaches `time` (the fault schedule).
    private func sleep(until time: UInt64, recorder: HistoryRecorder) {
        while true {
            let now = recorder.now()
            guard now < time else { return }
            ignoringFailure("waking early only re-checks the clock") { usleep(useconds_t(min(time - now, 50_000_000) / 1000)) }
        }
    }
}

/// Tells the clients to stop (set once by the thread that runs the faults).
private final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    var isSet: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}

/// One client's connection: opened on demand, moved to the next endpoint when it
/// cannot be opened, dropped when a request leaves it unusable.
private struct ClientSession {
    let workload: HistoryWorkload
    var endpointIndex: Int
    var open: DIPCConnection? = nil
    var failedConnects = 0

    init(workload: HistoryWorkload, endpointIndex: Int) {
        self.workload = workload
        self.endpointIndex = endpointIndex
    }

    /// The open connection, or nil after a failed attempt (then the next call tries the
    /// next endpoint, after a short pause so a dead cluster is not spun on).
    mutating func connection() -> DIPCConnection? {
        if let open, open.isOpen { return open }
        open = nil
        do {
            open = try workload.connect(workload.endpoints[endpointIndex])
            return open
        } catch {
            failedConnects += 1
            endpointIndex = (endpointIndex + 1) % workload.endpoints.count
            ignoringFailure("waking early only retries sooner") { usleep(10_000) }
            return nil
        }
    }

    /// Sends one request on `connection`, recorded from invocation to reply.
    mutating func perform(
        _ kind: HistoryOperation.Kind, mailbox: Int, client: Int, argument: String?, wait: Int, after: UInt64 = 0,
        on connection: DIPCConnection, recorder: HistoryRecorder
    ) -> HistoryOperation.Result {
        let ticket = recorder.invoke(client: client, mailbox: mailbox, kind: kind, argument: argument)
        let result: HistoryOperation.Result
        do {
            switch kind {
            case .read:
                let message = try connection.read(mailbox)
                result = .ok(value: String(decoding: message.data, as: UTF8.self), version: message.version)
            case .watch:
                let message = try connection.watch(mailbox, after: after, waitMilliseconds: wait)
                result = .ok(value: String(decoding: message.data, as: UTF8.self), version: message.version)
            case .write:
                result = .ok(value: nil, version: try connection.write(mailbox, Array((argument ?? "").utf8)))
            case .push:
                result = .ok(value: nil, version: try connection.push(mailbox, Array((argument ?? "").utf8)))
            case .take:
                let message = try connection.consume(mailbox, waitMilliseconds: wait)
                result = .ok(value: String(decoding: message.data, as: UTF8.self), version: message.version)
            }
        } catch let error as DIPCClientError {
            result = Self.classify(error, kind: kind)
        } catch {
            result = .unknown("\(error)")
        }
        recorder.complete(ticket, result)
        if !connection.isOpen { open = nil }
        if case .failed(let why) = result, why.hasPrefix("unavailable") { moveOn() }
        if case .unknown(let why) = result, why.hasPrefix("unavailable") { moveOn() }
        return result
    }

    /// What an error says about the request's effect (SPEC §2, §4).
    static func classify(_ error: DIPCClientError, kind: HistoryOperation.Kind) -> HistoryOperation.Result {
        switch error {
        case .server(code: "empty", _) where kind == .take:
            return .empty
        case .server(code: "unavailable", let message) where message.contains("outcome unknown"):
            return .unknown("unavailable: \(message)")
        case .server(code: "internal", let message):
            return .unknown("internal: \(message)")
        case .server(let code, let message):
            return .failed("\(code): \(message)")
        case .connection(let text):
            return .unknown(text)
        case .protocolViolation(let text):
            return .unknown("protocol violation: \(text)")
        }
    }

    /// Leaves this endpoint (it cannot reach its store): the next request goes to the next one.
    private mutating func moveOn() {
        close()
        endpointIndex = (endpointIndex + 1) % workload.endpoints.count
    }

    mutating func close() {
        open?.close()
        open = nil
    }
}
