import DIPCTestSupport
import Testing

/// Histories generated from a linearizable model (each operation takes effect at a
/// random instant inside its interval; outcomes made unknown at random, applied or not,
/// possibly after the error reply) must pass; the same histories with one fault
/// planted must not.
@Suite("linearizability checker: random histories")
struct RandomHistoryTests {
    @Test("linearizable histories with unknown outcomes pass", arguments: 1...12)
    func validHistoriesPass(seed: UInt64) {
        let history = ModelHistory.generate(seed: seed)
        let report = LinearizabilityChecker.check(history, expectDrainedQueues: true)
        #expect(report.isLinearizable, "seed \(seed): \(report)")
        #expect(history.resultCounts["unknown", default: 0] > 0, "seed \(seed) exercised no unknown outcome")
        #expect(history.resultCounts["ok", default: 0] > 200, "seed \(seed): too few acknowledged operations to mean anything")
        #expect(report.registers == [0] && report.queues == [1])
    }

    @Test("a take duplicated in a valid history is caught", arguments: 1...4)
    func duplicatedTakeCaught(seed: UInt64) throws {
        var history = ModelHistory.generate(seed: seed)
        let takes = history.operations.indices.filter { history.operations[$0].kind == .take && history.operations[$0].acknowledgedVersion != nil }
        let original = try #require(takes.first)
        let victim = try #require(takes.last { $0 != original && history.operations[$0].invoked > history.operations[original].replied! })
        guard case .ok(let value, _) = history.operations[original].result,
              case .ok(_, let version) = history.operations[victim].result else { Issue.record("not acknowledged"); return }
        history.operations[victim].result = .ok(value: value, version: version)
        let report = LinearizabilityChecker.check(history, expectDrainedQueues: true)
        #expect(report.kinds.contains(.duplicateTake), "seed \(seed): \(report)")
    }

    @Test("a read turned stale in a valid history is caught", arguments: 1...4)
    func staleReadCaught(seed: UInt64) throws {
        var history = ModelHistory.generate(seed: seed)
        let ops = history.operations
        // A read invoked after a write completed with a higher version than the first write's.
        let firstWrite = try #require(ops.filter { $0.kind == .write && $0.acknowledgedVersion != nil }.min { $0.acknowledgedVersion! < $1.acknowledgedVersion! })
        let read = try #require(ops.indices.first { i in
            ops[i].kind == .read && ops[i].acknowledgedVersion.map { $0 > firstWrite.acknowledgedVersion! } == true
                && ops.contains { $0.kind == .write && $0.acknowledgedVersion != nil && $0.completed! < ops[i].invoked && $0.acknowledgedVersion! > firstWrite.acknowledgedVersion! }
        })
        history.operations[read].result = .ok(value: firstWrite.argument, version: firstWrite.acknowledgedVersion!)
        let report = LinearizabilityChecker.check(history, expectDrainedQueues: true)
        #expect(report.kinds.contains(.staleRead), "seed \(seed): \(report)")
    }
}

/// A linearizable history of one register (mailbox 0) and one queue (mailbox 1),
/// generated from a sequential model, then drained.
enum ModelHistory {
    private struct Planned {
        var operation: HistoryOperation
        /// When it takes effect; nil: never (an unknown outcome that did not happen).
        var effect: UInt64?
    }

    static func generate(seed: UInt64, clients: Int = 5, operationsPerClient: Int = 80) -> OperationHistory {
        var random = SplitMix64(seed: seed)
        func below(_ n: UInt64) -> UInt64 { random.next() % n }
        var planned: [Planned] = []
        for client in 0..<clients {
            var time = below(50)
            for sequence in 0..<operationsPerClient {
                let invoked = time + below(20)
                let duration = 1 + below(100)
                let replied = invoked + duration
                let mailbox = Int(below(2))
                let kind: HistoryOperation.Kind = mailbox == 0 ? (below(2) == 0 ? (below(2) == 0 ? .read : .watch) : .write) : (below(2) == 0 ? .push : .take)
                let argument = kind == .write || kind == .push ? "c\(client)-\(sequence)" : nil
                var operation = HistoryOperation(client: client, mailbox: mailbox, kind: kind, argument: argument, invoked: invoked, replied: replied, result: .failed("never applied"))
                var effect: UInt64? = invoked + below(duration + 1)
                if below(8) == 0 {
                    // Unknown outcome: applied or not, possibly after the error reply.
                    operation.result = .unknown("dropped")
                    if random.next() % 2 == 0 { effect = nil } else { effect = invoked + below(3 * duration + 1) }
                    if below(2) == 0 { operation.replied = nil }
                }
                planned.append(Planned(operation: operation, effect: effect))
                time = replied + 1
            }
        }
        let end = planned.map { max($0.operation.replied ?? 0, $0.effect ?? 0) }.max()! + 10

        var register = (value: "", version: UInt64(0))
        var queue: [String] = []
        var queueVersion: UInt64 = 0
        func apply(_ operation: inout HistoryOperation) {
            let known = !operation.isUnknown
            switch operation.kind {
            case .read, .watch:
                if known { operation.result = .ok(value: register.value, version: register.version) }
            case .write:
                register = (operation.argument!, register.version + 1)
                if known { operation.result = .ok(value: nil, version: register.version) }
            case .push:
                queue.append(operation.argument!)
                queueVersion += 1
                if known { operation.result = .ok(value: nil, version: queueVersion) }
            case .take:
                if queue.isEmpty {
                    if known { operation.result = .empty }
                } else {
                    let message = queue.removeFirst()
                    queueVersion += 1
                    if known { operation.result = .ok(value: message, version: queueVersion) }
                }
            }
        }
        for index in planned.indices.sorted(by: { (planned[$0].effect ?? .max, $0) < (planned[$1].effect ?? .max, $1) }) {
            guard planned[index].effect != nil else { continue }
            apply(&planned[index].operation)
        }
        // The drain: one more client, sequential, after everything.
        var operations = planned.map(\.operation)
        var time = end
        while true {
            let wasEmpty = queue.isEmpty
            var result = HistoryOperation.Result.empty
            if !wasEmpty {
                let message = queue.removeFirst()
                queueVersion += 1
                result = .ok(value: message, version: queueVersion)
            }
            let take = HistoryOperation(client: clients, mailbox: 1, kind: .take, invoked: time, replied: time + 2, result: result)
            operations.append(take)
            time += 3
            if wasEmpty { break }
        }
        return OperationHistory(operations: operations)
    }
}
