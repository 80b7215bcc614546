import DIPCTestSupport
import Testing

/// The checker on queue mailboxes (p/c, FIFO, VERSION): what it must catch and what it must pass.
@Suite("linearizability checker: queues")
struct QueueCheckerTests {
    // MARK: caught

    @Test("a duplicated take: one message delivered twice")
    func duplicateTake() {
        let report = H.check([
            H.push("m", 0...10, version: 1),
            H.take(20...30, "m", version: 2),
            H.take(40...50, "m", version: 3, client: 2),
        ])
        #expect(report.kinds.contains(.duplicateTake), "\(report)")
        #expect(report.violations.first { $0.kind == .duplicateTake }?.operations.count == 2)
    }

    @Test("a take of a message never pushed, or whose push failed")
    func takeOfUnpushed() {
        let never = H.check([H.take(0...10, "ghost", version: 1)])
        #expect(never.kinds.contains(.takeOfUnpushedMessage), "\(never)")
        let failed = H.check([H.failed(.push, "f", 0...10, mailbox: 1), H.take(20...30, "f", version: 1)])
        #expect(failed.kinds.contains(.takeOfUnpushedMessage), "\(failed)")
    }

    @Test("an acknowledged push never delivered after draining")
    func lostPush() {
        let report = H.check(
            [
                H.push("a", 0...10, version: 1),
                H.push("b", 20...30, version: 2),
                H.take(40...50, "b", version: 3),
                H.empty(60...70),
            ], drained: true)
        #expect(report.kinds.contains(.lostPush), "\(report)")
        let plain = H.check([H.push("a", 0...10, version: 1), H.empty(60...70)], drained: true)
        #expect(plain.kinds == [.lostPush], "\(plain)")
    }

    @Test("an acknowledged push skipped by FIFO, without draining: a later-pushed message was taken")
    func skippedPushWithoutDrain() {
        let skipped = H.check([
            H.push("a", 0...10, version: 1),
            H.push("b", 20...30, version: 2),
            H.take(40...50, "b", version: 3),
        ])
        #expect(skipped.kinds == [.lostPush], "\(skipped)")
        // A take of unknown outcome invoked before b's take replied may have removed a.
        let explained = H.check([
            H.push("a", 0...10, version: 1),
            H.push("b", 20...30, version: 2),
            H.unknown(.take, invoked: 35, mailbox: 1),
            H.take(40...50, "b", version: 4),
        ])
        #expect(explained.isLinearizable, "\(explained)")
    }

    @Test("a take of unknown outcome invoked after the queue was found empty explains no lost push")
    func lateUnknownTakeExplainsNothing() {
        let report = H.check(
            [H.push("a", 0...10, version: 1), H.empty(20...30), H.unknown(.take, invoked: 40, mailbox: 1)],
            drained: true)
        #expect(report.kinds.contains(.lostPush), "\(report)")
    }

    @Test("FIFO violated: pushes ordered by real time are taken in the other order")
    func fifoByRealTime() {
        let report = H.check([
            H.push("a", 0...10, version: 1),
            H.push("b", 20...30, version: 2),
            H.take(40...50, "b", version: 3),
            H.take(60...70, "a", version: 4),
        ])
        #expect(report.kinds == [.fifoOrder], "\(report)")
        let violation = report.violations.first
        #expect(violation?.operations.map(\.kind) == [.push, .push, .take, .take], "names both pushes and both takes")
    }

    @Test("FIFO violated with a push of unknown outcome that real time orders after an acknowledged one")
    func fifoWithUnknownPush() {
        let report = H.check([
            H.push("a", 0...10, version: 1),
            H.unknown(.push, "u", invoked: 20, mailbox: 1),
            H.take(40...50, "u", version: 3),
            H.take(60...70, "a", version: 4),
        ])
        #expect(report.kinds == [.fifoOrder], "\(report)")
    }

    @Test("err empty while a message was certainly in the queue")
    func emptyWhileNotEmpty() {
        let report = H.check([H.push("a", 0...10, version: 1), H.empty(20...30), H.take(40...50, "a", version: 2)])
        #expect(report.kinds == [.emptyWhileNotEmpty], "\(report)")
    }

    @Test("a take ordered before its push")
    func takeBeforePush() {
        let report = H.check([H.push("a", 0...100, version: 2), H.take(10...90, "a", version: 1)])
        #expect(report.kinds.contains(.takeBeforePush), "\(report)")
    }

    @Test("draining expected but no final empty answer")
    func notDrained() {
        let report = H.check([H.push("a", 0...10, version: 1), H.take(20...30, "a", version: 2)], drained: true)
        #expect(report.kinds == [.notDrained], "\(report)")
    }

    // MARK: passed

    @Test("a sequential FIFO history, drained, passes")
    func sequentialPasses() {
        let report = H.check(
            [
                H.push("a", 0...10, version: 1),
                H.push("b", 20...30, version: 2),
                H.take(40...50, "a", version: 3),
                H.take(60...70, "b", version: 4),
                H.empty(80...90),
            ], drained: true)
        #expect(report.isLinearizable, "\(report)")
        #expect(report.queues == [1])
    }

    @Test("overlapping pushes in either order, and overlapping takes, pass")
    func concurrentPasses() {
        for (first, second) in [("a", "b"), ("b", "a")] {
            let report = H.check(
                [
                    H.push("a", 0...100, version: first == "a" ? 1 : 2, client: 0),
                    H.push("b", 10...90, version: first == "a" ? 2 : 1, client: 2),
                    H.empty(5...8, client: 3),
                    H.take(110...200, first, version: 3, client: 1),
                    H.take(120...190, second, version: 4, client: 3),
                    H.empty(300...310),
                ], drained: true)
            #expect(report.isLinearizable, "\(first) first: \(report)")
        }
    }

    @Test("changes of unknown outcome pass whether they happened or not")
    func unknownOutcomesPass() {
        // An unknown push that happened (its message was taken) and one that did not.
        let pushes = H.check(
            [
                H.unknown(.push, "u", invoked: 0, mailbox: 1),
                H.unknown(.push, "v", invoked: 5, client: 3, mailbox: 1),
                H.take(20...30, "u", version: 2),
                H.empty(40...50),
            ], drained: true)
        #expect(pushes.isLinearizable, "\(pushes)")
        // An unknown take that removed a message undelivered, and one that took nothing.
        let takes = H.check(
            [
                H.push("a", 0...10, version: 1),
                H.push("b", 20...30, version: 2),
                H.unknown(.take, invoked: 35, mailbox: 1),
                H.take(40...50, "b", version: 4),
                H.unknown(.take, invoked: 55, client: 3, mailbox: 1),
                H.empty(60...70),
            ], drained: true)
        #expect(takes.isLinearizable, "\(takes)")
    }
}
