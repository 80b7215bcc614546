import DIPCTestSupport
import Testing

/// The checker on register mailboxes (r/w, VERSION): what it must catch and what it must pass.
@Suite("linearizability checker: registers")
struct RegisterCheckerTests {
    // MARK: caught

    @Test("a stale read: after an acknowledged write, a read returns the older value and version")
    func staleRead() {
        let report = H.check([
            H.write("a", 0...10, version: 1),
            H.write("b", 20...30, version: 2),
            H.read(40...50, "a", version: 1),
        ])
        #expect(report.kinds == [.staleRead], "\(report)")
        #expect(report.violations.first?.operations.map(\.kind) == [.write, .read], "names the write and the read")
    }

    @Test("a stale watch: checked as a read at its reply")
    func staleWatch() {
        let watch = HistoryOperation(client: 1, mailbox: 0, kind: .watch, argument: "0 20", invoked: 40, replied: 50, result: .ok(value: "a", version: 1))
        let report = H.check([H.write("a", 0...10, version: 1), H.write("b", 20...30, version: 2), watch])
        #expect(report.kinds == [.staleRead], "\(report)")
    }

    @Test("a stale read of the initial content after an acknowledged write")
    func staleInitialRead() {
        let report = H.check([H.write("a", 0...10, version: 1), H.read(20...30, "", version: 0)])
        #expect(report.kinds == [.staleRead], "\(report)")
    }

    @Test("a lost acknowledged write: two writes acknowledged with one version")
    func lostWriteSameVersion() {
        let report = H.check([
            H.write("a", 0...10, version: 1),
            H.write("b", 20...30, version: 1, client: 2),
            H.read(40...50, "b", version: 1),
        ])
        #expect(report.kinds.contains(.lostWrite), "\(report)")
    }

    @Test("a lost acknowledged write: a read shows an older value under the newer write's version")
    func lostWriteOverwritten() {
        let report = H.check([
            H.write("a", 0...10, version: 1),
            H.write("b", 20...30, version: 2),
            H.read(40...50, "a", version: 2),
        ])
        #expect(report.kinds == [.lostWrite], "\(report)")
        #expect(report.violations.first?.operations.compactMap(\.argument) == ["a", "b"])
    }

    @Test("reads of values no write produced: never written, or written by a failed write")
    func impossibleReads() {
        let never = H.check([H.read(0...10, "ghost", version: 1)])
        #expect(never.kinds.contains(.impossibleRead), "\(never)")
        let failed = H.check([H.failed(.write, "x", 0...10, mailbox: 0), H.read(20...30, "x", version: 1)])
        #expect(failed.kinds.contains(.impossibleRead), "\(failed)")
    }

    @Test("writes ordered by real time but not by version")
    func writesOutOfOrder() {
        let report = H.check([H.write("a", 0...10, version: 2), H.write("b", 20...30, version: 1)])
        #expect(report.kinds == [.realTimeOrder], "\(report)")
    }

    @Test("a version no write made (a change nobody asked for)")
    func unexplainedVersion() {
        let report = H.check([H.write("a", 0...10, version: 2)])
        #expect(report.kinds == [.unexplainedVersion], "\(report)")
    }

    @Test("a write of unknown outcome invoked too late cannot explain an earlier version")
    func lateUnknownWriteExplainsNothing() {
        let report = H.check([
            H.write("a", 0...10, version: 1),
            H.write("b", 20...30, version: 3),
            H.unknown(.write, "c", invoked: 40, mailbox: 0),
        ])
        #expect(report.kinds == [.unexplainedVersion], "version 2 completed nowhere: \(report)")
    }

    @Test("an observed write of unknown outcome seen under a version the reads' order forbids")
    func unknownWriteSeenTooEarly() {
        let report = H.check([
            H.write("a", 0...10, version: 1),
            H.read(15...20, "a", version: 1),
            H.unknown(.write, "c", invoked: 30, mailbox: 0),
            H.read(40...50, "c", version: 1),
        ])
        #expect(report.kinds.contains(.lostWrite) || report.kinds.contains(.realTimeOrder), "\(report)")
        #expect(!report.isLinearizable)
    }

    // MARK: passed

    @Test("a sequential history passes, from a non-empty initial state")
    func sequentialPasses() {
        let report = H.check(
            [
                H.read(0...5, "old", version: 7),
                H.write("a", 10...20, version: 8),
                H.read(30...40, "a", version: 8),
                H.write("b", 50...60, version: 9),
                H.read(70...80, "b", version: 9),
            ],
            initial: [0: .init(value: "old", version: 7)])
        #expect(report.isLinearizable, "\(report)")
        #expect(report.operationsChecked == 5 && report.registers == [0])
    }

    @Test("overlapping writes in either order, with reads overlapping them, pass")
    func concurrentPasses() {
        // b was invoked later but ordered first; the read overlapping both may see either state.
        for (first, second) in [("a", "b"), ("b", "a")] {
            let report = H.check([
                H.write(first, 0...100, version: 1, client: 0),
                H.write(second, 10...90, version: 2, client: 2),
                H.read(5...95, "", version: 0, client: 1),
                H.read(20...95, first, version: 1, client: 3),
                H.read(110...120, second, version: 2, client: 1),
            ])
            #expect(report.isLinearizable, "\(first) then \(second): \(report)")
        }
    }

    @Test("writes of unknown outcome pass whether they happened (seen, or filling a version) or not")
    func unknownOutcomesPass() {
        let happenedSeen = H.check([
            H.write("a", 0...10, version: 1),
            H.unknown(.write, "u", invoked: 20, mailbox: 0),
            H.read(30...40, "u", version: 2),
            H.write("b", 50...60, version: 3),
        ])
        #expect(happenedSeen.isLinearizable, "\(happenedSeen)")
        let happenedUnseen = H.check([
            H.unknown(.write, "u", invoked: 0, mailbox: 0),
            H.write("a", 10...20, version: 2),
            H.read(30...40, "a", version: 2),
        ])
        #expect(happenedUnseen.isLinearizable, "\(happenedUnseen)")
        let didNotHappen = H.check([
            H.write("a", 0...10, version: 1),
            H.unknown(.write, "u", invoked: 20, mailbox: 0),
            H.read(30...40, "a", version: 1),
            H.write("b", 50...60, version: 2),
            H.read(70...80, "b", version: 2),
        ])
        #expect(didNotHappen.isLinearizable, "\(didNotHappen)")
    }

    @Test("a mailbox used both as register and queue is reported unsupported")
    func mixedUnsupported() {
        let report = H.check([H.write("a", 0...10, version: 1, mailbox: 3), H.push("b", 20...30, version: 2, mailbox: 3)])
        #expect(report.kinds == [.unsupported], "\(report)")
    }
}
