// The two questions the checker asks about VERSION, the order of a mailbox's changes,
// each answered in O(n log n): which VERSION must an operation be above, given what
// completed before it was invoked (`CompletedVersions`)? Can the VERSIONs that no
// acknowledged change owns be explained by changes of unknown outcome (`VersionGaps`)?

/// The operations of one mailbox with a known VERSION and a completion time, sorted by
/// completion, so that "the highest VERSION completed strictly before time T" is a
/// binary search.
struct CompletedVersions {
    /// (completion time, highest VERSION completed up to here, the operation that had it).
    private var prefix: [(time: UInt64, version: UInt64, operation: Int)] = []

    /// `entries`: (completion time, VERSION, index of the operation) of every completed
    /// operation whose VERSION is known.
    init(_ entries: [(time: UInt64, version: UInt64, operation: Int)]) {
        var best: (version: UInt64, operation: Int)? = nil
        for entry in entries.sorted(by: { $0.time < $1.time }) {
            if best == nil || entry.version > best!.version { best = (entry.version, entry.operation) }
            prefix.append((entry.time, best!.version, best!.operation))
        }
    }

    /// The highest VERSION among operations that completed strictly before `time`, and
    /// the operation that had it; nil when none did.
    func highest(before time: UInt64) -> (version: UInt64, operation: Int)? {
        var low = 0, high = prefix.count
        while low < high {
            let middle = (low + high) / 2
            if prefix[middle].time < time { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : (prefix[low - 1].version, prefix[low - 1].operation)
    }
}

/// The VERSIONs between a mailbox's initial VERSION and the highest one seen that no
/// change with a known VERSION owns. Each must have been produced by a change of
/// unknown outcome; a change `u` can have produced VERSION g only if g is above every
/// VERSION that completed before `u` was invoked (its threshold).
enum VersionGaps {
    /// The first VERSION in (`initial`, `highest`] outside `owned` that cannot be given to
    /// a distinct candidate (each candidate given by its threshold: it fits VERSIONs
    /// above it), with how many such VERSIONs there are; nil when every one can.
    ///
    /// The candidate sets are nested (a lower threshold fits every VERSION a higher one
    /// fits), so Hall's condition reduces to: the k-th smallest free VERSION has at least
    /// k candidates below it.
    static func firstUnexplained(
        initial: UInt64, highest: UInt64, owned: Set<UInt64>, thresholds: [UInt64]
    ) -> (version: UInt64, free: UInt64, candidates: Int)? {
        guard highest > initial else { return nil }
        let ownedInRange = owned.filter { $0 > initial && $0 <= highest }.count
        let free = highest - initial - UInt64(ownedInRange)
        guard free > 0 else { return nil }
        let sortedThresholds = thresholds.sorted()
        if free > UInt64(sortedThresholds.count) {
            // Too many to enumerate usefully: name the first free one.
            var version = initial + 1
            while owned.contains(version) { version += 1 }
            return (version, free, sortedThresholds.count)
        }
        var k = 0, fitting = 0
        var version = initial
        while version < highest {
            version += 1
            if owned.contains(version) { continue }
            k += 1
            while fitting < sortedThresholds.count && sortedThresholds[fitting] < version { fitting += 1 }
            if fitting < k { return (version, free, sortedThresholds.count) }
        }
        return nil
    }
}
