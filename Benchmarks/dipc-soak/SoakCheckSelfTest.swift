/// `dipc-soak --check-the-checker`: feeds `SoakCheck` histories that each break one
/// invariant (and one that breaks none) and requires it to notice exactly those, so a
/// soak that reports "every invariant held" means something.
enum SoakCheckSelfTest {
    /// The names of the cases `SoakCheck` judged wrongly (empty when it is right).
    static func run() -> [String] {
        let plan = SoakPlan(ports: [1, 2], registers: 0..<2, queues: 2..<4, mailboxSize: 1024, deadline: 0, seed: 0)
        func value(_ writer: UInt32, _ sequence: UInt64) -> SoakValue { SoakValue(writer: writer, sequence: sequence) }

        /// A consistent history: worker 0 writes and pushes, worker 1 reads and takes.
        func history() -> (logs: [WorkerLog], drained: [Observation], final: [Observation]) {
            var writer = WorkerLog(worker: 0)
            writer.attempted = 3
            writer.acknowledgedWrites = [Observation(mailbox: 0, version: 1, value: value(0, 1))]
            writer.acknowledgedPushes = [
                Observation(mailbox: 2, version: 1, value: value(0, 2)), Observation(mailbox: 2, version: 2, value: value(0, 3)),
            ]
            var reader = WorkerLog(worker: 1)
            reader.reads = [Observation(mailbox: 0, version: 1, value: value(0, 1)), Observation(mailbox: 1, version: 0, value: nil)]
            reader.takes = [Observation(mailbox: 2, version: 3, value: value(0, 2))]
            let drained = [Observation(mailbox: 2, version: 4, value: value(0, 3))]
            let final = [Observation(mailbox: 0, version: 1, value: value(0, 1)), Observation(mailbox: 1, version: 0, value: nil)]
            return ([writer, reader], drained, final)
        }

        var wrong: [String] = []
        func expect(_ name: String, violations: Bool, _ change: (inout [WorkerLog], inout [Observation], inout [Observation]) -> Void) {
            var (logs, drained, final) = history()
            change(&logs, &drained, &final)
            let check = SoakCheck(logs: logs, drained: drained, finalRegisters: final, plan: plan)
            if check.violations.isEmpty == violations { wrong.append(name) }
        }
        expect("consistent history", violations: false) { _, _, _ in }
        expect("value nobody wrote", violations: true) { logs, _, _ in
            logs[1].reads.append(Observation(mailbox: 0, version: 1, value: value(0, 9)))
        }
        expect("two values at one version", violations: true) { logs, _, _ in
            logs[1].reads.append(Observation(mailbox: 0, version: 1, value: value(0, 3)))
        }
        expect("acknowledged write seen at another version", violations: true) { logs, _, _ in
            logs[1].reads.append(Observation(mailbox: 0, version: 5, value: value(0, 1)))
        }
        expect("acknowledged write lost", violations: true) { _, _, final in
            final[0] = Observation(mailbox: 0, version: 0, value: nil)
        }
        expect("message taken twice", violations: true) { logs, _, _ in
            logs[1].takes.append(Observation(mailbox: 2, version: 5, value: value(0, 2)))
        }
        expect("acknowledged push lost", violations: true) { _, drained, _ in drained = [] }
        expect("acknowledged push lost in a take cut short", violations: false) { logs, drained, _ in
            drained = []
            logs[1].failedTakes = 1
        }
        expect("violation seen by a worker", violations: true) { logs, _, _ in logs[1].violations = ["torn"] }
        return wrong
    }
}
