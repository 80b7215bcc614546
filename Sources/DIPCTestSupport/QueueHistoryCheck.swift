/// The queue half of `LinearizabilityChecker`: one mailbox used with `p` and `c`,
/// starting empty. What it checks is listed on `LinearizabilityChecker`.
enum QueueHistoryCheck {
    /// A message delivered by an acknowledged take, and the push that sent it.
    private struct Delivery {
        var take: Int
        var push: Int
        var version: UInt64
    }

    static func violations(
        mailbox: Int, operations ops: [HistoryOperation], initial: OperationHistory.InitialState,
        expectDrained: Bool
    ) -> [HistoryViolation] {
        var found: [HistoryViolation] = []
        func report(_ kind: HistoryViolation.Kind, _ involved: [Int], _ explanation: String) {
            found.append(HistoryViolation(kind, mailbox: mailbox, operations: involved.map { ops[$0] }, explanation))
        }

        var pushOf: [String: Int] = [:]
        for (i, op) in ops.enumerated() where op.kind == .push {
            let value = op.argument ?? ""
            if let other = pushOf[value] {
                report(.unsupported, [other, i], "two pushes of \(value.debugDescription): messages must be unique")
            } else {
                pushOf[value] = i
            }
        }

        // Acknowledged changes (pushes and takes) own their VERSION.
        var ownerOf: [UInt64: Int] = [:]
        for (i, op) in ops.enumerated() where op.kind.isChange {
            guard let version = op.acknowledgedVersion else { continue }
            if version <= initial.version {
                report(.realTimeOrder, [i], "change acknowledged with version \(version), not above the version \(initial.version) the queue had before the history began")
            } else if let other = ownerOf[version] {
                report(.duplicateVersion, [other, i], "both changes were acknowledged with version \(version): one of them was lost or counted twice")
            } else {
                ownerOf[version] = i
            }
        }

        // Deliveries: each acknowledged take's message, traced to its push.
        var takerOf: [String: Int] = [:]
        var deliveries: [Delivery] = []
        for (i, op) in ops.enumerated() where op.kind == .take {
            guard case .ok(let returned, let version) = op.result else { continue }
            let message = returned ?? ""
            if let other = takerOf[message] {
                report(.duplicateTake, [other, i], "both takes returned \(message.debugDescription): a message was delivered twice")
                continue
            }
            takerOf[message] = i
            guard let push = pushOf[message] else {
                report(.takeOfUnpushedMessage, [i], "the take returned \(message.debugDescription), which no recorded push sent to this mailbox")
                continue
            }
            switch ops[push].result {
            case .failed, .empty:
                report(.takeOfUnpushedMessage, [push, i], "the take returned the message of a push that failed, which promises no effect")
                continue
            case .ok(_, let pushed) where pushed >= version:
                report(.takeBeforePush, [push, i], "the take has version \(version), not above the push's version \(pushed)")
            default:
                break
            }
            if let replied = op.replied, ops[push].invoked > replied {
                report(.takeBeforePush, [push, i], "the take replied before the push of its message was invoked")
            }
            deliveries.append(Delivery(take: i, push: push, version: version))
        }
        deliveries.sort { $0.version < $1.version }

        // Real time among changes: a change that completed before another was invoked
        // has the lower VERSION.
        var completedEntries: [(time: UInt64, version: UInt64, operation: Int)] = []
        for (i, op) in ops.enumerated() where op.kind.isChange {
            if let version = op.acknowledgedVersion, let completed = op.completed {
                completedEntries.append((completed, version, i))
            }
        }
        let completed = CompletedVersions(completedEntries)
        for (i, op) in ops.enumerated() where op.kind.isChange {
            guard let version = op.acknowledgedVersion,
                  let (before, earlier) = completed.highest(before: op.invoked), before >= version else { continue }
            report(.realTimeOrder, [earlier, i], "the first change completed with version \(before) before the second was invoked, yet the second has version \(version), not above it")
        }

        // FIFO by VERSION: acknowledged pushes' messages come out in push-VERSION order.
        var latest: Delivery? = nil
        for delivery in deliveries {
            guard let pushed = ops[delivery.push].acknowledgedVersion else { continue }
            if let before = latest, let beforePushed = ops[before.push].acknowledgedVersion, beforePushed > pushed {
                report(.fifoOrder, [delivery.push, before.push, before.take, delivery.take], "the first message was pushed at version \(pushed), before the second (version \(beforePushed)), but taken after it (take versions \(before.version) then \(delivery.version))")
            } else {
                latest = delivery
            }
        }
        // FIFO by real time, for pushes of unknown outcome (VERSION covers the others):
        // a push that completed before another was invoked is taken first.
        var earliestLater: (time: UInt64, delivery: Delivery)? = nil
        for delivery in deliveries.reversed() {
            let push = ops[delivery.push]
            if let later = earliestLater, later.time < push.invoked,
               push.acknowledgedVersion == nil || ops[later.delivery.push].acknowledgedVersion == nil {
                report(.fifoOrder, [later.delivery.push, delivery.push, delivery.take, later.delivery.take], "the first push completed before the second was invoked, yet the second message was taken first (take versions \(delivery.version) then \(later.delivery.version))")
            }
            if let time = push.completed, earliestLater == nil || time < earliestLater!.time {
                earliestLater = (time, delivery)
            }
        }

        // `err empty` while a message was certainly there: acknowledged as pushed before
        // the empty take was invoked, taken by a take invoked after it replied. Sweep the
        // empty answers by reply time, latest first, keeping the earliest-pushed
        // delivery among those whose take was invoked after it.
        let byTakeInvocation = deliveries.sorted { ops[$0.take].invoked > ops[$1.take].invoked }
        let emptyAnswers = ops.indices
            .filter { ops[$0].kind == .take && ops[$0].result == .empty && ops[$0].replied != nil }
            .sorted { ops[$0].replied! > ops[$1].replied! }
        var next = 0
        var earliestPushed: (time: UInt64, delivery: Delivery)? = nil
        for e in emptyAnswers {
            while next < byTakeInvocation.count && ops[byTakeInvocation[next].take].invoked > ops[e].replied! {
                let delivery = byTakeInvocation[next]
                if let time = ops[delivery.push].completed, earliestPushed == nil || time < earliestPushed!.time {
                    earliestPushed = (time, delivery)
                }
                next += 1
            }
            if let (time, delivery) = earliestPushed, time < ops[e].invoked {
                report(.emptyWhileNotEmpty, [delivery.push, e, delivery.take], "the message was pushed (acknowledged) before the take was invoked and taken by another take invoked after it answered empty, so it was in the queue all along")
            }
        }

        // VERSIONs no acknowledged change owns need a change of unknown outcome each;
        // a push of unknown outcome whose message was taken needs one below the take's.
        let unknownChanges = ops.indices.filter { ops[$0].kind.isChange && ops[$0].isUnknown }
        func threshold(_ i: Int) -> UInt64 { completed.highest(before: ops[i].invoked)?.version ?? initial.version }
        let owned = Set(ownerOf.keys)
        let highest = ownerOf.keys.max() ?? initial.version
        if let gap = VersionGaps.firstUnexplained(
            initial: initial.version, highest: highest, owned: owned, thresholds: unknownChanges.map(threshold)) {
            let witness = ownerOf.filter { $0.key > gap.version }.min { $0.key < $1.key }.map { [$0.value] } ?? []
            report(.unexplainedVersion, witness, "the \(gap.free) versions up to \(highest) that no acknowledged change owns cannot each come from a distinct one of the \(gap.candidates) changes of unknown outcome (version \(gap.version) is the first left over): a change happened that no client made, or one was applied twice")
        }
        let ownedSorted = owned.sorted()
        func ownedCount(above low: UInt64, below high: UInt64) -> Int {
            ownedSorted.filter { $0 > low && $0 < high }.count
        }
        for delivery in deliveries where ops[delivery.push].isUnknown {
            let low = threshold(delivery.push)
            if delivery.version <= low + 1 || ownedCount(above: low, below: delivery.version) >= Int(delivery.version - low - 1) {
                report(.takeBeforePush, [delivery.push, delivery.take], "the push (unknown outcome) was invoked after version \(low) completed, and its message was taken at version \(delivery.version): no version between them was free for the push")
            }
        }

        found += undeliveredViolations(mailbox: mailbox, ops: ops, deliveries: deliveries, takerOf: takerOf, expectDrained: expectDrained)
        return found
    }

    /// Every acknowledged push that was never delivered must have been removed by a
    /// distinct take of unknown outcome invoked before the message had to be gone: before
    /// a message pushed after it was taken (whether or not the queue was drained), or,
    /// with `expectDrained`, before a final take found the queue empty (which must exist:
    /// one invoked after every acknowledged change completed).
    private static func undeliveredViolations(
        mailbox: Int, ops: [HistoryOperation], deliveries: [Delivery], takerOf: [String: Int], expectDrained: Bool
    ) -> [HistoryViolation] {
        var found: [HistoryViolation] = []
        var finalEmpty: Int? = nil
        if expectDrained {
            let lastAcknowledged = ops.filter { $0.kind.isChange && $0.acknowledgedVersion != nil }.compactMap(\.completed).max() ?? 0
            finalEmpty = ops.indices
                .filter { ops[$0].kind == .take && ops[$0].result == .empty && ops[$0].invoked > lastAcknowledged && ops[$0].replied != nil }
                .min { ops[$0].replied! < ops[$1].replied! }
            if finalEmpty == nil {
                found.append(HistoryViolation(.notDrained, mailbox: mailbox, operations: [], "no take answered empty after the last acknowledged change completed, so what was delivered cannot be checked against what was pushed"))
            }
        }
        let emptyAt = finalEmpty.map { ops[$0].replied! }

        // Deadlines: the earliest reply of a take whose message was pushed after this one
        // (by VERSION, or by real time for pushes of unknown outcome), as suffix minima.
        // A loop, not compactMap with a nested map: Swift 6.3.1's release build crashes
        // on that closure (CopyPropagation, "Found outside of lifetime use").
        var byPushVersion: [(UInt64, UInt64)] = []
        for delivery in deliveries {
            guard let version = ops[delivery.push].acknowledgedVersion else { continue }
            byPushVersion.append((version, ops[delivery.take].replied ?? .max))
        }
        byPushVersion.sort { $0.0 < $1.0 }
        let byPushInvocation = deliveries.filter { ops[$0.push].acknowledgedVersion == nil }.map { (ops[$0.push].invoked, ops[$0.take].replied ?? .max) }.sorted { $0.0 < $1.0 }
        func suffixMinima(_ entries: [(UInt64, UInt64)]) -> [UInt64] {
            var minima = Array(repeating: UInt64.max, count: entries.count + 1)
            for i in stride(from: entries.count - 1, through: 0, by: -1) { minima[i] = min(minima[i + 1], entries[i].1) }
            return minima
        }
        let versionMinima = suffixMinima(byPushVersion), invocationMinima = suffixMinima(byPushInvocation)
        /// The first index whose key is above `key`.
        func firstAbove(_ key: UInt64, in entries: [(UInt64, UInt64)]) -> Int {
            var low = 0, high = entries.count
            while low < high {
                let middle = (low + high) / 2
                if entries[middle].0 <= key { low = middle + 1 } else { high = middle }
            }
            return low
        }
        var deadlines: [(time: UInt64, push: Int)] = []
        for push in ops.indices where ops[push].kind == .push && takerOf[ops[push].argument ?? ""] == nil {
            guard let pushed = ops[push].acknowledgedVersion else { continue }
            var deadline = emptyAt ?? .max
            deadline = min(deadline, versionMinima[firstAbove(pushed, in: byPushVersion)])
            if let completed = ops[push].completed {
                deadline = min(deadline, invocationMinima[firstAbove(completed, in: byPushInvocation)])
            }
            if deadline < .max { deadlines.append((deadline, push)) }
        }
        guard !deadlines.isEmpty else { return found }
        deadlines.sort { $0.time < $1.time }
        let witness = finalEmpty.map { [ops[$0]] } ?? []
        let unknownTakeStarts = ops.filter { $0.kind == .take && $0.isUnknown }.map(\.invoked).sorted()
        if deadlines.count > unknownTakeStarts.count {
            found.append(HistoryViolation(.lostPush, mailbox: mailbox, operations: deadlines.prefix(5).map { ops[$0.push] } + witness, "\(deadlines.count) acknowledged pushes were never delivered though they had to be gone (a later-pushed message was taken\(emptyAt == nil ? "" : ", or the queue was found empty")), but only \(unknownTakeStarts.count) takes of unknown outcome could have removed them (the first \(min(5, deadlines.count)) are listed)"))
            return found
        }
        var fitting = 0
        for (k, entry) in deadlines.enumerated() {
            while fitting < unknownTakeStarts.count && unknownTakeStarts[fitting] <= entry.time { fitting += 1 }
            if fitting < k + 1 {
                found.append(HistoryViolation(.lostPush, mailbox: mailbox, operations: [ops[entry.push]] + witness, "the acknowledged push was never delivered, and the \(fitting) takes of unknown outcome invoked before it had to be gone (a later-pushed message taken, or the final empty answer) are fewer than the \(k + 1) undelivered messages that needed one by then"))
                break
            }
        }
        return found
    }
}
