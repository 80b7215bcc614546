/// The soak's invariants, checked over everything the workers did and saw.
///
/// - No torn value: every value read or taken parses and matches its checksum (checked
///   by the workers as they go), and was really written or pushed by someone.
/// - Versions never go back: for each worker and mailbox (checked as they go); and one
///   version of a register always shows one value, the one its acknowledged write put.
/// - Nothing acknowledged lost: each register ends at or after its last acknowledged
///   write (for tdb also after every server was stopped and one restarted).
/// - Queues: nothing taken twice, and every acknowledged push was taken, except at
///   most one message per take cut short by the kill (it may have been removed with
///   its reply lost).
struct SoakCheck {
    var violations: [String] = []
    var figures: [(String, String)] = []

    init(logs: [WorkerLog], drained: [Observation], finalRegisters: [Observation], plan: SoakPlan) {
        for log in logs { violations += log.violations }
        let attempted = Dictionary(uniqueKeysWithValues: logs.map { ($0.worker, $0.attempted) })

        func checkWritten(_ observation: Observation, _ what: String) {
            guard let value = observation.value else { return }
            guard let last = attempted[value.writer], value.sequence <= last, value.sequence > 0 else {
                violations.append("\(what) mailbox \(observation.mailbox) version \(observation.version): value \(value.writer).\(value.sequence) that nobody wrote")
                return
            }
        }

        // Registers: one value per version; acknowledged writes at their version.
        var valueAt: [Int: [UInt64: SoakValue?]] = [:]
        var acknowledgedAt: [SoakValue: Observation] = [:]
        var lastAcknowledged: [Int: UInt64] = [:]
        for log in logs {
            for write in log.acknowledgedWrites {
                if let value = write.value { acknowledgedAt[value] = write }
                lastAcknowledged[write.mailbox] = max(lastAcknowledged[write.mailbox] ?? 0, write.version)
            }
        }
        let registerObservations = logs.flatMap { $0.acknowledgedWrites + $0.reads } + finalRegisters
        for observation in registerObservations {
            checkWritten(observation, "r/w")
            if observation.version == 0 && observation.value != nil {
                violations.append("mailbox \(observation.mailbox) holds a value at version 0")
            }
            if let known = valueAt[observation.mailbox]?[observation.version], known != observation.value {
                violations.append("mailbox \(observation.mailbox) version \(observation.version) showed two values: \(describe(known)) and \(describe(observation.value))")
            }
            valueAt[observation.mailbox, default: [:]][observation.version] = observation.value
            if let value = observation.value, let write = acknowledgedAt[value],
                write.mailbox != observation.mailbox || write.version != observation.version
            {
                violations.append("value \(describe(value)) acknowledged at mailbox \(write.mailbox) version \(write.version) seen at mailbox \(observation.mailbox) version \(observation.version)")
            }
        }
        for final in finalRegisters {
            if let last = lastAcknowledged[final.mailbox], final.version < last {
                violations.append("mailbox \(final.mailbox) ended at version \(final.version), before its acknowledged write at \(last): lost")
            }
        }

        // Queues: nothing twice, nothing acknowledged missing beyond the takes cut short.
        var received: [SoakValue: Int] = [:]
        var receivedQueue: [SoakValue: Int] = [:]
        let taken = logs.flatMap(\.takes) + drained
        for take in taken {
            checkWritten(take, "c")
            guard let value = take.value else { continue }
            received[value, default: 0] += 1
            receivedQueue[value] = take.mailbox
        }
        let duplicates = received.filter { $0.value > 1 }
        if !duplicates.isEmpty {
            violations.append("\(duplicates.count) messages taken more than once, e.g. \(duplicates.prefix(3).map { describe($0.key) })")
        }
        let pushes = logs.flatMap(\.acknowledgedPushes)
        var missing = 0
        for push in pushes {
            guard let value = push.value else { continue }
            if let queue = receivedQueue[value] {
                if queue != push.mailbox { violations.append("\(describe(value)) pushed to mailbox \(push.mailbox), taken from \(queue)") }
            } else {
                missing += 1
            }
        }
        let cutShortTakes = logs.reduce(0) { $0 + $1.failedTakes }
        if missing > cutShortTakes {
            violations.append("\(missing) acknowledged pushes were never taken, more than the \(cutShortTakes) takes cut short by the kill: lost")
        }
        let acknowledgedValues = Set(pushes.compactMap(\.value))
        let unacknowledgedTaken = received.keys.filter { !acknowledgedValues.contains($0) }.count

        let sum = { (f: (WorkerLog) -> Int) in logs.reduce(0) { $0 + f($1) } }
        figures = [
            ("operations", "\(sum { $0.operations })"),
            ("reads", "\(sum { $0.reads.count })"),
            ("writes acknowledged", "\(sum { $0.acknowledgedWrites.count })"),
            ("pushes acknowledged", "\(pushes.count)"),
            ("takes", "\(sum { $0.takes.count })"),
            ("err full / err empty", "\(sum { $0.full }) / \(sum { $0.empty })"),
            ("cut short by the kill (r/w/p/c)", "\(sum { $0.failedReads })/\(sum { $0.failedWrites })/\(sum { $0.failedPushes })/\(cutShortTakes)"),
            ("reconnect attempts that failed", "\(sum { $0.reconnects })"),
            ("other server errors", "\(sum { $0.otherErrors.count })"),
            ("messages drained at the end", "\(drained.count)"),
            ("acknowledged pushes never taken", "\(missing) (allowed: \(cutShortTakes))"),
            ("taken without an acknowledgement", "\(unacknowledgedTaken)"),
            ("highest register version", "\(finalRegisters.map(\.version).max() ?? 0)"),
        ]
        for log in logs where !log.otherErrors.isEmpty {
            figures.append(("worker \(log.worker) errors", log.otherErrors.prefix(3).joined(separator: "; ")))
        }
    }
}

func describe(_ value: SoakValue?) -> String {
    guard let value else { return "(empty)" }
    return "\(value.writer).\(value.sequence)"
}
