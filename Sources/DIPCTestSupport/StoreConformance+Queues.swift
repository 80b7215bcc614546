import DIPCCore
import Glibc
import Synchronization

/// The queue clauses: order and capacity, waiting, arrival order.
extension StoreRun {
    /// How long a waiting request in these checks may wait before the check fails;
    /// the contract's clauses are stated in seconds, so a wrong store fails quickly.
    static let longWaitMilliseconds = 5_000
    /// A wait meant to time out.
    static let shortWaitMilliseconds = 200
    /// The contract: a waiter wakes within a second of a change made by any server.
    static let wakeLimitSeconds = 1.0

    func checkQueueOrder() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "store")
        let m = g.mailboxes > 1 ? 1 : 0
        let lengths = [5, 0, 1, 37, 2, 64, 13]
        var messages: [[UInt8]] = []
        var used = 0
        var version: UInt64 = 0
        while true {
            let length = lengths[messages.count % lengths.count]
            guard StoreLayout.fits(used: used, adding: length, in: g) else { break }
            let message = pattern(length, seed: UInt64(300 + messages.count))
            version += 1
            try c.expect(try c.push(a, m, message, .never, "push \(messages.count + 1)"), .done(version),
                         "push \(messages.count + 1) of \(length) bytes onto \(used) bytes used (StoreLayout.fits says it fits)")
            used += StoreLayout.messageOverhead + length
            messages.append(message)
        }
        // The longest message that still fits, then nothing does.
        let fill = g.mailboxSize - used
        if fill >= 0 {
            let message = pattern(fill, seed: 399)
            version += 1
            try c.expect(try c.push(a, m, message, .never, "filling push"), .done(version),
                         "push of \(fill) bytes onto \(used) bytes used (fills the list exactly)")
            messages.append(message)
        }
        for length in [0, 1] {
            try c.expect(try c.push(a, m, pattern(length, seed: 398), .never, "push onto a full list"), .timedOut,
                         "push(.never) of \(length) bytes onto a full list")
        }
        try c.expectContent(a, m, messages.last!, version, "a full list after refused pushes (read returns the newest)")

        for (i, message) in messages.enumerated() {
            version += 1
            let taken = try c.take(a, m, .never, "take \(i + 1)")
            try c.expectBytes(taken.data, message, "take \(i + 1) of \(messages.count) (oldest first, boundaries kept)")
            try c.expect(taken.ended, .done(version), "version of take \(i + 1) of \(messages.count)")
        }
        try c.expect(try c.take(a, m, .never, "take from an emptied list").ended, .timedOut, "take(.never) from an emptied list")
        try c.expectContent(a, m, [], version, "an emptied list after a refused take")

        let full = pattern(g.mailboxSize, seed: 397)
        version += 1
        try c.expect(try c.push(a, m, full, .never, "full-size push"), .done(version), "push of mailboxSize bytes onto an empty list")
        try c.expect(try c.push(a, m, [], .never, "push after a full-size message"), .timedOut,
                     "push(.never) of 0 bytes after a full-size message")
        version += 1
        let taken = try c.take(a, m, .never, "take of the full-size message")
        try c.expect(taken.ended, .done(version), "take of the full-size message")
        try c.expectBytes(taken.data, full, "take of the full-size message")
    }

    func checkWaiting() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "server A"), b = try open(name, "server B")
        let m = 0
        var version: UInt64 = 0

        // A take waiting on A is served by a push through B.
        let message = pattern(29, seed: 400)
        version += 1
        let served = try takeWhileOtherActs(on: a, m, "a take waiting on A") {
            try c.expect(try c.push(b, m, message, .never, "B's push for the waiting take"), .done(version), "version of B's push")
        }
        version += 1
        try c.expect(served.ended, .done(version), "a take waiting on A when B pushes")
        try c.expectBytes(served.data, message, "the message the waiting take got")
        try expectWoken(served, "a take waiting on A when B pushes")
        try c.expect(a.describe().queuedRequests, 0, "A's describe().queuedRequests once its take returned")

        // Nothing to take, no room to push: both time out at their deadline, changing nothing.
        let shortTake = try timed(MailboxWait(milliseconds: Self.shortWaitMilliseconds)) { wait in
            try c.take(a, m, wait, "a take from an empty list").ended
        }
        try expectTimedOut(shortTake, "take(\(Self.shortWaitMilliseconds) ms) from an empty list")
        try c.expectContent(b, m, [], version, "the empty list after the take timed out")
        version += 1
        let full = pattern(g.mailboxSize, seed: 401)
        try c.expect(try c.push(b, m, full, .never, "a full-size push"), .done(version), "version of a full-size push")
        let shortPush = try timed(MailboxWait(milliseconds: Self.shortWaitMilliseconds)) { wait in
            try c.push(a, m, [1], wait, "a push onto a full list")
        }
        try expectTimedOut(shortPush, "push(\(Self.shortWaitMilliseconds) ms) onto a full list")
        try c.expectContent(b, m, full, version, "the full list after the push timed out")
        version += 1
        try c.expect(try c.take(b, m, .never, "emptying take").ended, .done(version), "version of the emptying take")

        // waitForChange: times out when nothing changes, is done when the other server writes.
        let unchanged = try timed(MailboxWait(milliseconds: Self.shortWaitMilliseconds)) { wait in
            try c.waitForChange(a, m, after: version, wait, "waitForChange when nothing changes")
        }
        try expectTimedOut(unchanged, "waitForChange(\(Self.shortWaitMilliseconds) ms) when nothing changes")
        let value = pattern(11, seed: 402)
        version += 1
        let changed = try waitForChangeWhileOtherActs(on: a, m, after: version - 1) {
            try c.expect(try c.write(b, m, value, "B's write for the waiting waitForChange"), version, "version of B's write")
        }
        try c.expect(changed.ended, .changed, "waitForChange on A when B writes")
        try expectWoken(changed, "waitForChange on A when B writes")
        version += 1
        try c.expect(try c.take(b, m, .never, "emptying take").ended, .done(version), "version of the emptying take")

        // A waiting take told to abandon takes nothing, even the message pushed meanwhile.
        // The push must find the taker waiting, past its first try (which asks nothing):
        // it has asked shouldAbandon once (or 10 s passed, for a store that asks only when
        // woken). The taker may still have asked just before the flag was set and then
        // tried once more, taking the message legitimately (a loaded machine can hold it
        // between the two): then the clause was not exercised, and the round is repeated.
        var exercised = false
        for round in 1...Self.abandonRounds where !exercised {
            let abandon = Flag(), asked = Flag(), answeredAbandon = Flag()
            let kept = pattern(17, seed: 403 + UInt64(round))
            version += 1
            let abandoned = try takeWhileOtherActs(
                on: a, m, "a take waiting on A, then told to abandon",
                shouldAbandon: {
                    asked.set()
                    guard abandon.isSet else { return false }
                    answeredAbandon.set()
                    return true
                }
            ) {
                _ = waitUntil(seconds: 10) { asked.isSet }
                abandon.set()
                try c.expect(try c.push(b, m, kept, .never, "B's push after the taker was told to abandon"), .done(version),
                             "version of B's push")
            }
            guard answeredAbandon.isSet else {
                // Its last question came before the flag: the message is the taker's.
                version += 1
                try c.expect(abandoned.ended, .done(version), "a waiting take last told to go on, when B pushes")
                try c.expectBytes(abandoned.data, kept, "the message a take last told to go on took")
                continue
            }
            exercised = true
            try c.expect(abandoned.ended, .abandoned, "a waiting take whose shouldAbandon returns true, when B pushes")
            try expectWoken(abandoned, "a waiting take told to abandon, when B pushes")
            try c.expectContent(b, m, kept, version, "the message pushed after the taker abandoned (nothing taken)")
            try c.expect(a.describe().queuedRequests, 0, "A's describe().queuedRequests once its take abandoned")
            version += 1
            let left = try c.take(b, m, .never, "take of the message the abandoned take left")
            try c.expect(left.ended, .done(version), "take of the message the abandoned take left")
            try c.expectBytes(left.data, kept, "the message the abandoned take left")
        }
        if !exercised {
            throw c.fail("a waiting take told to abandon", expected: "shouldAbandon asked after it returned true",
                         got: "the taker took the message after a last \"go on\" in all \(Self.abandonRounds) rounds")
        }
    }

    /// How many times the abandon clause is tried before the test gives up on seeing it
    /// exercised (see `checkWaiting`).
    static let abandonRounds = 5

    func checkArrivalOrder() throws {
        let c = clause
        let name = freshName()
        let a = try open(name, "server A"), b = try open(name, "server B")
        let m = g.mailboxes - 1
        let handles = [a, b, a]
        let messages = (0..<handles.count).map { pattern(10 + $0, seed: UInt64(500 + $0)) }
        var takers: [SpawnedThread<Result<Taken, any Error>>] = []
        let driven = Result<Void, any Error> {
            for (i, handle) in handles.enumerated() {
                takers.append(spawnTake(on: handle, m, "taker \(i + 1)"))
                let expected = handles[0...i].filter { $0 === handle }.count
                guard waitUntil(seconds: 5, { handle.describe().queuedRequests == expected }) else {
                    throw c.fail("taker \(i + 1) of \(handles.count) queued on its handle", expected: "describe().queuedRequests \(expected)",
                                 got: "\(handle.describe().queuedRequests) after 5 s")
                }
            }
            for (i, message) in messages.enumerated() {
                _ = try c.push(b, m, message, .never, "push \(i + 1)")
            }
        }
        let results = takers.map { $0.join() }
        try driven.get()
        for (i, result) in results.enumerated() {
            let taken = try result.get()
            guard case .done = taken.ended else {
                throw c.fail("taker \(i + 1) of \(handles.count)", expected: "a message", got: "\(taken.ended)")
            }
            try c.expectBytes(taken.data, messages[i], "the message taker \(i + 1) got (arrival order: message \(i + 1))")
        }
        try c.expectContent(a, m, [], UInt64(2 * messages.count), "the mailbox after three pushes and three takes")
    }

    // MARK: helpers

    /// What a take on another thread returned, and when.
    struct Taken: Sendable {
        var ended: Ended
        var data: [UInt8]
        var returnedAt: Double
        /// When the change that should wake it began (set by the caller).
        var actedAt = 0.0
    }

    /// A take of `longWaitMilliseconds` on a new thread.
    func spawnTake(on store: any MailboxStore, _ m: Int, _ step: String,
                   shouldAbandon: @escaping @Sendable () -> Bool = { false }) -> SpawnedThread<Result<Taken, any Error>> {
        let c = clause
        return SpawnedThread {
            Result {
                let taken = try c.take(store, m, MailboxWait(milliseconds: Self.longWaitMilliseconds, shouldAbandon: shouldAbandon), step)
                return Taken(ended: taken.ended, data: taken.data, returnedAt: monotonicSeconds())
            }
        }
    }

    /// Starts a waiting take on `store`, waits until `store.describe()` counts it in
    /// line, runs `act` (which should end the take), joins the take and returns it.
    func takeWhileOtherActs(on store: any MailboxStore, _ m: Int, _ step: String,
                            shouldAbandon: @escaping @Sendable () -> Bool = { false },
                            act: () throws -> Void) throws -> Taken {
        let taker = spawnTake(on: store, m, step, shouldAbandon: shouldAbandon)
        let c = clause
        let acted = Result<Double, any Error> {
            guard waitUntil(seconds: 5, { store.describe().queuedRequests == 1 }) else {
                throw c.fail("\(step): describe().queuedRequests", expected: "1 (the take in line)",
                             got: "\(store.describe().queuedRequests) after 5 s")
            }
            let at = monotonicSeconds()
            try act()
            return at
        }
        var taken = try taker.join().get()
        taken.actedAt = try acted.get()
        return taken
    }

    /// Starts a `waitForChange(after: version)` of `longWaitMilliseconds` on `store`,
    /// runs `act` (which should change the mailbox) once the waiter is in the call, and
    /// returns how it ended.
    ///
    /// The interface offers no way to see a `waitForChange` in progress, so after the
    /// waiter has entered the call this waits until it asks `shouldAbandon` (which a
    /// store asks only between tries) or 250 ms pass: the change then most likely
    /// finds it waiting. Correctness does not depend on it: a change before the call
    /// must end it at once all the same.
    func waitForChangeWhileOtherActs(on store: any MailboxStore, _ m: Int, after version: UInt64,
                                     act: () throws -> Void) throws -> Taken {
        let c = clause
        let entered = Flag(), asked = Flag()
        let waiter = SpawnedThread<Result<Taken, any Error>> {
            Result {
                entered.set()
                let wait = MailboxWait(milliseconds: Self.longWaitMilliseconds) {
                    asked.set()
                    return false
                }
                let ended = try c.waitForChange(store, m, after: version, wait, "waitForChange on another thread")
                return Taken(ended: ended, data: [], returnedAt: monotonicSeconds())
            }
        }
        let acted = Result<Double, any Error> {
            _ = waitUntil(seconds: 5) { entered.isSet }
            _ = waitUntil(seconds: 0.25) { asked.isSet }
            let at = monotonicSeconds()
            try act()
            return at
        }
        var taken = try waiter.join().get()
        taken.actedAt = try acted.get()
        return taken
    }

    /// The waiter returned after the change began (not before: nothing had changed)
    /// and within `wakeLimitSeconds` of it.
    func expectWoken(_ taken: Taken, _ step: String) throws {
        let delay = taken.returnedAt - taken.actedAt
        if delay < 0 {
            throw clause.fail("\(step): when it returned", expected: "after the other server's change",
                              got: "\(milliseconds(-delay)) before it")
        }
        if delay >= Self.wakeLimitSeconds {
            throw clause.fail("\(step): when it returned", expected: "within \(Self.wakeLimitSeconds) s of the change",
                              got: "\(milliseconds(delay)) after it")
        }
    }

    /// Runs `body` with `wait`; returns how it ended, its deadline and when it returned.
    func timed(_ wait: MailboxWait, _ body: (MailboxWait) throws -> Ended) throws -> (ended: Ended, deadline: Double, returnedAt: Double) {
        let ended = try body(wait)
        return (ended, wait.deadline, monotonicSeconds())
    }

    /// It timed out, not before its deadline and within `wakeLimitSeconds` after it.
    func expectTimedOut(_ result: (ended: Ended, deadline: Double, returnedAt: Double), _ step: String) throws {
        try clause.expect(result.ended, .timedOut, step)
        let late = result.returnedAt - result.deadline
        if late < 0 {
            throw clause.fail("\(step): when it timed out", expected: "at its deadline",
                              got: "\(milliseconds(-late)) before it")
        }
        if late >= Self.wakeLimitSeconds {
            throw clause.fail("\(step): when it timed out", expected: "within \(Self.wakeLimitSeconds) s of its deadline",
                              got: "\(milliseconds(late)) after it")
        }
    }
}

/// `seconds` as whole milliseconds, for messages: `"1203 ms"`.
func milliseconds(_ seconds: Double) -> String {
    "\(Int((seconds * 1000).rounded())) ms"
}

/// A flag one thread sets and others poll.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}
