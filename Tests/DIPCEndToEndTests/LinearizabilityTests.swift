import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §3 "Linearizable" and "Crashes" across servers: random r/w/p/c from clients of
/// two servers sharing one store, one server SIGKILLed mid-run, the recorded history
/// checked by `LinearizabilityChecker` (issue 14, "the same history checker").
@Suite("linearizability under a server kill")
struct LinearizabilityTests {
    @Test("two servers on one store, random r/w/p/c, one SIGKILLed mid-run: linearizable, nothing lost or twice", arguments: E2E.builtBackends)
    func historyUnderServerKill(backend: String) throws {
        // Plain `c` only (no WAIT_MS): see waitingTakesUnderServerKill for waiting ones.
        let (run, report) = try Self.runUnderServerKill(backend, takeWaitsMilliseconds: [0], seconds: 3)
        #expect(report.isLinearizable, "\(report)")
        #expect(run.drained, "a queue could not be drained to empty at the end")
    }

    @Test("the same with waiting takes (c N 20)", arguments: E2E.builtBackends)
    func waitingTakesUnderServerKill(backend: String) throws {
        let (run, report) = try Self.runUnderServerKill(backend, takeWaitsMilliseconds: [0, 20], seconds: 2)
        #expect(run.drained, "a queue could not be drained to empty at the end")
        // Found by this test, fixed: a waiting `c` in the consumers' line behind a place
        // the killed server held timed out with `err empty` while messages sat in the
        // queue (until the stalled line was voided, ~0.4 s after the kill).
        #expect(report.isLinearizable, "\(report)")
    }

    /// Starts two servers of `backend` on one store, runs `HistoryWorkload` (3 clients
    /// per server, registers 0-1, queues 2-3) for `seconds`, SIGKILLs the first server
    /// at 40 % of the run, and checks what must hold whatever the history says: the
    /// kill happened, both servers served, the killed server's clients moved over, no
    /// backend failures. Prints the figures; returns the run and the checker's report.
    static func runUnderServerKill(
        _ backend: String, takeWaitsMilliseconds: [Int], seconds: Double
    ) throws -> (HistoryWorkload.Run, LinearizabilityChecker.Report) {
        try withScope { scope in
            let killed = try scope.start(backend, mailboxes: 4, mailboxKB: 4)
            let survivor = try scope.start(backend, mailboxes: 4, mailboxKB: 4)
            let seed = UInt64.random(in: 1...UInt64.max)
            let pid = killed.pid
            try #require(pid > 0, "no pid in the killed server's record")

            var workload = HistoryWorkload(
                endpoints: [.init(port: killed.port), .init(port: survivor.port)], registers: [0, 1], queues: [2, 3])
            workload.clientsPerEndpoint = 3
            workload.seconds = seconds
            workload.seed = seed
            workload.takeWaitsMilliseconds = takeWaitsMilliseconds
            workload.requestTimeoutSeconds = E2E.replyTimeout
            workload.faults = [
                // Each server's 3 clients have ≥ 12 acknowledged operations before the
                // kill (checked below), however slow the machine.
                HistoryWorkload.Fault("SIGKILL server on port \(killed.port)", at: seconds * 0.4, afterAcknowledgedPerClient: 4) {
                    if Glibc.kill(pid, SIGKILL) != 0 { throw E2EError("kill(\(pid), SIGKILL): errno \(errno)") }
                }
            ]
            let run = try workload.run()
            let checkStart = ContinuousClock.now
            let report = run.check()
            let checkTime = ContinuousClock.now - checkStart
            let history = run.history
            print("linearizability \(backend) takes waiting \(takeWaitsMilliseconds) ms (seed \(seed)): \(report.operationsChecked) operations checked in \(String(format: "%.0f", Double(checkTime.components.seconds) * 1000 + Double(checkTime.components.attoseconds) / 1e15)) ms, \(run.faultsInjected.count) faults injected (\(run.faultsInjected.joined(separator: ", "))), \(report.violations.count) violations; results \(history.resultSummary)")

            let failures = Dictionary(grouping: history.operations.compactMap { operation -> String? in
                if case .failed(let why) = operation.result { return "\(operation.kind) \(why.split(separator: " ").prefix(2).joined(separator: " "))" }
                return nil
            }, by: { $0 }).mapValues(\.count)
            if !failures.isEmpty { print("linearizability \(backend): failed requests by kind and error: \(failures.sorted { $0.key < $1.key })") }
            #expect(run.faultErrors.isEmpty, "\(run.faultErrors)")
            #expect(run.faultsInjected.count == 1)
            #expect(killed.waitGone(timeout: 10), "the SIGKILLed server is still alive")
            #expect(report.queues == [2, 3] && report.registers == [0, 1], "\(report.queues) \(report.registers)")
            // The run meant something: both servers served before the kill, and the
            // killed server's clients (even numbers) went on through the survivor.
            let faultTime = try #require(run.faultTimes.first)
            let acknowledged = history.operations.filter { $0.acknowledgedVersion != nil }
            for server in 0..<2 {
                let before = acknowledged.filter { $0.replied! < faultTime && $0.client % 2 == server && $0.client < 6 }
                #expect(before.count >= 10, "server \(server): \(before.count) acknowledged operations before the kill")
            }
            let movedOver = acknowledged.filter { $0.invoked > faultTime && $0.client % 2 == 0 && $0.client < 6 }
            #expect(!movedOver.isEmpty, "no client of the killed server was served after the kill")
            let backendFailures = history.backendFailures
            #expect(backendFailures.isEmpty, "backend failures: \(backendFailures.prefix(5).map(\.description))")
            return (run, report)
        }
    }
}
