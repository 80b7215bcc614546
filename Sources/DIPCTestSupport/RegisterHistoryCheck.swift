/// The register half of `LinearizabilityChecker`: one mailbox used with `r` and `w`.
/// What it checks is listed on `LinearizabilityChecker`.
enum RegisterHistoryCheck {
    static func violations(
        mailbox: Int, operations ops: [HistoryOperation], initial: OperationHistory.InitialState
    ) -> [HistoryViolation] {
        var found: [HistoryViolation] = []
        func report(_ kind: HistoryViolation.Kind, _ involved: [Int], _ explanation: String) {
            found.append(HistoryViolation(kind, mailbox: mailbox, operations: involved.map { ops[$0] }, explanation))
        }

        // Every write by its (unique) value.
        var writeOf: [String: Int] = [:]
        for (i, op) in ops.enumerated() where op.kind == .write {
            let value = op.argument ?? ""
            if let other = writeOf[value] {
                report(.unsupported, [other, i], "two writes of \(value.debugDescription): values must be unique")
            } else {
                writeOf[value] = i
            }
        }

        // Acknowledged writes own their VERSION.
        var ownerOf: [UInt64: Int] = [:]
        for (i, op) in ops.enumerated() where op.kind == .write {
            guard let version = op.acknowledgedVersion else { continue }
            if version <= initial.version {
                report(.realTimeOrder, [i], "write acknowledged with version \(version), not above the version \(initial.version) the mailbox had before the history began")
            } else if let other = ownerOf[version] {
                report(.lostWrite, [other, i], "both writes were acknowledged with version \(version): one replaced the other without a version of its own, so an acknowledged write was lost")
            } else {
                ownerOf[version] = i
            }
        }

        // What each read saw: the write (or the initial content) behind its value.
        // A write of unknown outcome that a read saw happened, with the read's VERSION.
        var assignedVersion: [Int: UInt64] = [:]
        var assignedOwner: [UInt64: Int] = [:]
        for (i, op) in ops.enumerated() where op.kind.isRead {
            guard case .ok(let returned, let version) = op.result else { continue }
            let value = returned ?? ""
            if version < initial.version {
                report(.staleRead, [i], "read version \(version), below the version \(initial.version) the mailbox had before the history began")
                continue
            }
            if version == initial.version {
                if value != initial.value {
                    report(.impossibleRead, [i], "read \(value.debugDescription) under the initial version \(version), when the mailbox held \(initial.value.debugDescription)")
                }
                continue
            }
            guard let write = writeOf[value] else {
                if let owner = ownerOf[version] {
                    report(.lostWrite, [owner, i], "the read shows \(value.debugDescription), which no recorded write wrote, under version \(version), which the write was acknowledged with: the acknowledged write was lost")
                } else {
                    report(.impossibleRead, [i], "read \(value.debugDescription) (version \(version)), which no recorded write wrote")
                }
                continue
            }
            switch ops[write].result {
            case .ok(_, let written):
                guard written != version else { continue }
                if written < version, let owner = ownerOf[version] {
                    report(.lostWrite, [write, owner, i], "the read shows the first write's value (its version \(written)) under version \(version), which the second write was acknowledged with: the second, acknowledged write was lost")
                } else {
                    report(.impossibleRead, [write, i], "the read shows the write's value under version \(version), but the write was acknowledged with version \(written)")
                }
            case .failed, .empty:
                report(.impossibleRead, [write, i], "the read shows the value of a write that failed, which promises no effect")
            case .unknown:
                if let earlier = assignedVersion[write], earlier != version {
                    report(.impossibleRead, [write, i], "reads show this write's value under two versions, \(earlier) and \(version)")
                } else if let owner = ownerOf[version] {
                    report(.lostWrite, [write, owner, i], "the read shows the value of a write of unknown outcome under version \(version), which the second, acknowledged write got: that write was lost")
                } else if let other = assignedOwner[version], other != write {
                    report(.impossibleRead, [other, write, i], "reads show the values of two different writes under version \(version)")
                } else {
                    assignedVersion[write] = version
                    assignedOwner[version] = write
                }
            }
        }

        // Real time: nothing that completed before an operation was invoked may be
        // ordered after it. Writes are ordered by VERSION; a read sits after the write
        // of its VERSION and before the next one.
        var completedEntries: [(time: UInt64, version: UInt64, operation: Int)] = []
        var ordered: [(operation: Int, version: UInt64)] = []
        for (i, op) in ops.enumerated() {
            if let version = op.acknowledgedVersion {
                if let completed = op.completed { completedEntries.append((completed, version, i)) }
                ordered.append((i, version))
            } else if let version = assignedVersion[i] {
                ordered.append((i, version))
            }
        }
        let completed = CompletedVersions(completedEntries)
        for (i, version) in ordered {
            guard let (before, earlier) = completed.highest(before: ops[i].invoked) else { continue }
            if ops[i].kind.isRead, before > version {
                report(.staleRead, [earlier, i], "the first operation completed with version \(before) before the read was invoked, yet the read returned the older version \(version)")
            } else if ops[i].kind == .write, before >= version {
                report(.realTimeOrder, [earlier, i], "the first operation completed with version \(before) before the write was invoked, yet the write has version \(version), not above it")
            }
        }

        // Every VERSION up to the highest seen was made by some write: the ones no
        // acknowledged or observed write owns need a write of unknown outcome each.
        let owned = Set(ownerOf.keys).union(assignedOwner.keys)
        let highest = ordered.map(\.version).max() ?? initial.version
        let thresholds = ops.indices
            .filter { ops[$0].kind == .write && ops[$0].isUnknown && assignedVersion[$0] == nil }
            .map { completed.highest(before: ops[$0].invoked)?.version ?? initial.version }
        if let gap = VersionGaps.firstUnexplained(
            initial: initial.version, highest: highest, owned: owned, thresholds: thresholds) {
            let witness = ordered.filter { $0.version > gap.version }.min { $0.version < $1.version }.map { [$0.operation] } ?? []
            report(.unexplainedVersion, witness, "the \(gap.free) versions up to \(highest) that no acknowledged or observed write owns cannot each come from a distinct one of the \(gap.candidates) unobserved writes of unknown outcome (version \(gap.version) is the first left over): a change happened that no client made, or one write was applied twice")
        }
        return found
    }
}
