import DIPCTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SPEC §3 "Linearizable" and §4 on etcd, under the faults issue 14 names: three dipc
/// servers on a 3-node cluster, clients on all three doing random r/w/p/c/watch while
/// the etcd leader is SIGKILLed, one server is cut off from etcd and healed, and another
/// server is SIGKILLed; the recorded history is checked by `LinearizabilityChecker`
/// and the queues are drained (every acknowledged push taken exactly once).
@Suite("etcd: linearizability under faults", .serialized, .requires(.etcd))
struct EtcdLinearizabilityTests {
    @Test("3 servers on 3 etcd nodes: leader SIGKILL, a server cut off and healed, a server SIGKILL: linearizable, nothing lost or twice")
    func historyUnderFaults() throws {
        let cluster = try EtcdCluster(nodes: 3)
        defer { cluster.stop() }
        // The cut-off server reaches every node through its own relay.
        let relays = try (0..<3).map { try TCPRelay(to: cluster.clientPort($0)) }
        defer { relays.forEach { $0.stop() } }
        try withScope { scope in
            let all = cluster.endpoints.joined(separator: ",")
            let relayed = relays.map { "http://127.0.0.1:\($0.port)" }.joined(separator: ",")
            let killed = try scope.start("etcd", options: ["--etcd", all, "--io-timeout", "3"])
            let steady = try scope.start("etcd", options: ["--etcd", all, "--io-timeout", "3"])
            let isolated = try scope.start("etcd", options: ["--etcd", relayed, "--io-timeout", "3"])
            let pid = killed.pid
            try #require(pid > 0, "no pid in the killed server's record")
            for server in [killed, steady, isolated] { _ = try server.connect(timeout: 40).request("r 0") }

            let seconds = 10.0
            let seed = UInt64.random(in: 1...UInt64.max)
            var workload = HistoryWorkload(
                endpoints: [killed, steady, isolated].map { .init(port: $0.port) }, registers: [0, 1], queues: [2, 3])
            workload.clientsPerEndpoint = 2
            workload.seconds = seconds
            workload.seed = seed
            workload.takeWaitsMilliseconds = [0, 50]
            workload.requestTimeoutSeconds = E2E.replyTimeout
            workload.faults = [
                HistoryWorkload.Fault("SIGKILL the etcd leader", at: seconds * 0.2) {
                    guard let leader = cluster.leader() else { throw E2EError("no etcd leader to kill") }
                    cluster.kill(node: leader)
                },
                HistoryWorkload.Fault("cut server \(isolated.port) off from etcd", at: seconds * 0.45) {
                    relays.forEach { $0.cut() }
                },
                HistoryWorkload.Fault("heal server \(isolated.port)'s link", at: seconds * 0.6) {
                    try relays.forEach { try $0.heal() }
                },
                HistoryWorkload.Fault("SIGKILL server on port \(killed.port)", at: seconds * 0.7) {
                    if Glibc.kill(pid, SIGKILL) != 0 { throw E2EError("kill(\(pid), SIGKILL): errno \(errno)") }
                },
            ]
            let run = try workload.run()
            let report = run.check()
            let history = run.history
            print("linearizability etcd (seed \(seed)): \(report.operationsChecked) operations checked, \(run.faultsInjected.count) faults injected (\(run.faultsInjected.joined(separator: ", "))), \(report.violations.count) violations; results \(history.resultSummary)")

            #expect(run.faultErrors.isEmpty, "\(run.faultErrors)")
            #expect(run.faultsInjected.count == 4)
            #expect(report.isLinearizable, "\(report)")
            #expect(run.drained, "a queue could not be drained to empty at the end")
            #expect(killed.waitGone(timeout: 10), "the SIGKILLed server is still alive")
            // The run meant something: every server acknowledged operations, and some
            // after the leader was killed.
            let acknowledged = history.operations.filter { $0.acknowledgedVersion != nil }
            for server in 0..<3 {
                let served = acknowledged.filter { $0.client % 3 == server && $0.client < 6 }
                #expect(served.count >= 5, "server \(server): \(served.count) acknowledged operations")
            }
            let leaderKilledAt = try #require(run.faultTimes.first)
            #expect(acknowledged.contains { $0.invoked > leaderKilledAt }, "nothing acknowledged after the leader was killed")
            let backendFailures = history.backendFailures
            #expect(backendFailures.isEmpty, "backend failures: \(backendFailures.prefix(5).map(\.description))")
        }
    }
}
