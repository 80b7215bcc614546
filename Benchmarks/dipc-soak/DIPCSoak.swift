@preconcurrency import Glibc
import ArgumentParser
import DIPCClient
import DIPCTestSupport

/// `dipc-soak`: two real servers sharing one store, many clients doing mixed reads,
/// writes, pushes and takes of checksummed values, one server SIGKILLed and restarted
/// midway; then every invariant of `SoakCheck` is checked and the figures printed.
/// Exit 0 when every invariant held, 1 when one broke (each is printed), 2 on bad usage.
@main
struct DIPCSoak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc-soak",
        abstract: "Soak test: two dipc servers on one store, mixed clients, a SIGKILL and restart midway, invariants checked.")

    @Option(help: "Directory holding dipc and dipcrm (default: this program's directory).") var bin: String?
    @Option(help: "sysv, posix or tdb.") var backend: String = "tdb"
    @Option(help: "Seconds of traffic.") var seconds: Double = 60
    @Option(help: "Client connections, one thread each.") var clients: Int = 16
    @Option(help: "Mailboxes: the first half registers (r/w), the rest queues (p/c).") var mailboxes: Int = 16
    @Option(help: "Mailbox size in KiB.") var mailboxKB: Int = 4
    @Option(help: "Seed of the clients' random choices.") var seed: UInt64 = 1
    @Flag(inversion: .prefixedNo, help: "Also flood each server with connections and stalled writers (in a mailbox of their own), and check every server's thread and descriptor bounds for the whole run.")
    var hostile = true
    @Flag(help: "Only check that the invariant checks catch broken histories, then exit.") var checkTheChecker = false

    func validate() throws {
        guard ["sysv", "posix", "tdb"].contains(backend) else { throw ValidationError("--backend must be sysv, posix or tdb") }
        guard seconds >= 2 else { throw ValidationError("--seconds must be at least 2") }
        guard clients >= 1, clients <= 200 else { throw ValidationError("--clients must be in 1...200") }
        guard mailboxes >= 2, mailboxKB >= 1 else { throw ValidationError("need at least 2 mailboxes of at least 1 KiB") }
    }

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as SoakError {
            fputs("dipc-soak: \(error)\n", stderr)
            Glibc.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            fputs("dipc-soak: \(message(for: error))\n", stderr)
            Glibc.exit(code == .validationFailure ? 2 : 1)
        }
    }

    private enum Outcome: Sendable {
        case worker(WorkerLog)
        case chaos(Chaos.Report)
        case hostile(SoakHostile.Report)
    }

    func run() throws {
        let misjudged = SoakCheckSelfTest.run()
        guard misjudged.isEmpty else { throw SoakError("the invariant checks misjudge: \(misjudged.joined(separator: ", "))") }
        if checkTheChecker {
            print("dipc-soak: the invariant checks catch every broken history they were given")
            return
        }
        let directory = bin ?? programDirectory()
        // With hostile clients, one more mailbox (theirs) and a --max-clients they can reach.
        let servers = try SoakServers(bin: directory, backend: backend, mailboxes: mailboxes + (hostile ? 1 : 0),
                                      mailboxKB: mailboxKB, servers: 2)
        defer { servers.removeAll() }
        if hostile { servers.options = ["--max-clients", "\(SoakHostile.maxClients)"] }
        for port in servers.ports { print(try servers.start(port)) }

        let start = now()
        let plan = SoakPlan(
            ports: servers.ports, registers: 0..<(mailboxes / 2), queues: (mailboxes / 2)..<mailboxes,
            mailboxSize: mailboxKB * 1024, deadline: start + seconds, seed: seed)
        let killAt = start + seconds / 2
        let clientCount = clients
        // Per server: one flooder and the stalled writers; then one monitor for all.
        let hostilePerServer = 1 + SoakHostile.stalledWritersPerServer
        let hostileCount = hostile ? servers.ports.count * hostilePerServer + 1 : 0
        let hostileMailbox = mailboxes
        let outcomes = TestThreads.collect(clients + 1 + hostileCount) { index -> Outcome in
            if index < clientCount { return .worker(SoakWorker.run(index, plan: plan)) }
            if index == clientCount { return .chaos(Chaos.run(servers: servers, victim: plan.ports[0], at: killAt)) }
            let hostileIndex = index - clientCount - 1
            if hostileIndex == hostileCount - 1 { return .hostile(SoakHostile.monitor(servers: servers, deadline: plan.deadline)) }
            let port = plan.ports[hostileIndex / hostilePerServer]
            return hostileIndex % hostilePerServer == 0
                ? .hostile(SoakHostile.flood(port: port, deadline: plan.deadline))
                : .hostile(SoakHostile.stalledWriter(port: port, mailbox: hostileMailbox, mailboxSize: plan.mailboxSize,
                                                     deadline: plan.deadline))
        }
        let elapsed = now() - start
        var logs: [WorkerLog] = []
        var chaos = Chaos.Report()
        var hostileReport = SoakHostile.Report()
        for outcome in outcomes {
            switch outcome {
            case let .worker(log): logs.append(log)
            case let .chaos(report): chaos = report
            case let .hostile(report): hostileReport.merge(report)
            }
        }

        // The end state, seen through both servers; then the queues drained.
        var violations: [String] = chaos.failure.map { ["restart after SIGKILL failed: \($0)"] } ?? []
        let finalRegisters = try readRegisters(plan, port: plan.ports[1])
        let throughRestarted = try readRegisters(plan, port: plan.ports[0])
        for (a, b) in zip(finalRegisters, throughRestarted) where a.version != b.version || a.value != b.value {
            violations.append("servers disagree on mailbox \(a.mailbox): v\(a.version) \(describe(a.value)) vs v\(b.version) \(describe(b.value))")
        }
        let drained = try drain(plan, port: plan.ports[1])
        var check = SoakCheck(logs: logs, drained: drained, finalRegisters: finalRegisters, plan: plan)
        violations += check.violations
        if hostile {
            violations += hostileReport.violations
            check.figures += hostileReport.figures
        }
        if backend == "tdb" {
            violations += try persistenceCheck(servers: servers, plan: plan, expected: finalRegisters)
            check.figures.append(("tdb: registers and queued messages after stopping both servers and restarting one", violations.isEmpty ? "all kept" : "see violations"))
        }

        print("\n## dipc-soak: \(backend), 2 servers on one store, \(clients) clients, \(mailboxes) mailboxes of \(mailboxKB) KiB, seed \(seed)")
        let operations = logs.reduce(0) { $0 + $1.operations }
        print("traffic: \(fixed(elapsed, 1)) s, \(operations) operations, \(Int(Double(operations) / elapsed)) ops/s")
        print("SIGKILL of port \(plan.ports[0]) at \(fixed(chaos.killedAfter - start, 1)) s; restarted in \(fixed(chaos.restartSeconds, 2)) s")
        for (key, value) in check.figures { print("  \(key): \(value)") }
        if violations.isEmpty {
            print("every invariant held")
        } else {
            print("\(violations.count) INVARIANT VIOLATIONS:")
            for violation in violations.prefix(50) { print("  \(violation)") }
            // Thrown, not exit(1): the servers are removed (the `defer` above) before exiting 1.
            throw SoakError("\(violations.count) invariant violations")
        }
    }

    private func programDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return "." }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
    }

    private func readRegisters(_ plan: SoakPlan, port: Int) throws -> [Observation] {
        let connection = try DIPCConnection(port: port, timeoutSeconds: 10)
        defer { connection.close() }
        return try plan.registers.map { mailbox in
            let message = try connection.read(mailbox)
            return Observation(mailbox: mailbox, version: message.version, value: SoakValue.decode(message.data))
        }
    }

    /// Takes every message left in the queues.
    private func drain(_ plan: SoakPlan, port: Int) throws -> [Observation] {
        let connection = try DIPCConnection(port: port, timeoutSeconds: 10)
        defer { connection.close() }
        var out: [Observation] = []
        for mailbox in plan.queues {
            while true {
                do {
                    let message = try connection.consume(mailbox)
                    out.append(Observation(mailbox: mailbox, version: message.version, value: SoakValue.decode(message.data)))
                } catch DIPCClientError.server(code: "empty", message: _) {
                    break
                }
            }
        }
        return out
    }

    /// tdb only: pushes acknowledged messages, stops both servers, restarts one, and
    /// requires the registers and the messages to be there, unchanged.
    private func persistenceCheck(servers: SoakServers, plan: SoakPlan, expected: [Observation]) throws -> [String] {
        var violations: [String] = []
        let writer = UInt32(clients + 1)
        var pushed: [Int: [SoakValue]] = [:]
        do {
            let connection = try DIPCConnection(port: plan.ports[1], timeoutSeconds: 10)
            defer { connection.close() }
            var sequence: UInt64 = 0
            for mailbox in plan.queues {
                for _ in 0..<3 {
                    sequence += 1
                    let value = SoakValue(writer: writer, sequence: sequence)
                    try connection.push(mailbox, value.encoded(payloadLength: 32))
                    pushed[mailbox, default: []].append(value)
                }
            }
        }
        for port in plan.ports { try servers.stop(port) }
        try servers.start(plan.ports[0])
        let after = try readRegisters(plan, port: plan.ports[0])
        for (before, now) in zip(expected, after) where before.version != now.version || before.value != now.value {
            violations.append("tdb restart: mailbox \(before.mailbox) was v\(before.version) \(describe(before.value)), now v\(now.version) \(describe(now.value))")
        }
        let drained = try drain(plan, port: plan.ports[0])
        for mailbox in plan.queues {
            let got = drained.filter { $0.mailbox == mailbox }.map(\.value)
            if got != (pushed[mailbox] ?? []).map(Optional.some) {
                violations.append("tdb restart: queue \(mailbox) held \(got.map(describe)), expected \((pushed[mailbox] ?? []).map(describe))")
            }
        }
        return violations
    }
}

/// The thread that SIGKILLs one server midway and starts it again with the same arguments.
enum Chaos {
    struct Report: Sendable {
        var killedAfter: Double = 0
        var restartSeconds: Double = 0
        var failure: String?
    }

    static func run(servers: SoakServers, victim: Int, at killAt: Double) -> Report {
        var report = Report()
        while now() < killAt { usleep(10_000) }
        do {
            report.killedAfter = now()
            try servers.kill(victim)
            usleep(300_000)  // clients of the dead server find it gone and move to the other
            let restart = now()
            try servers.start(victim)
            report.restartSeconds = now() - restart
        } catch {
            report.failure = "\(error)"
        }
        return report
    }
}

/// `value` with `digits` decimals (no Foundation).
func fixed(_ value: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = Int((value * scale).rounded())
    let whole = scaled / Int(scale), fraction = abs(scaled % Int(scale))
    guard digits > 0 else { return "\(whole)" }
    let text = String(fraction)
    return "\(whole).\(String(repeating: "0", count: digits - text.count))\(text)"
}
