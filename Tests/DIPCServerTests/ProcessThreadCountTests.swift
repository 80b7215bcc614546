import Foundation
import Testing

@testable import DIPCServer

/// `ProcessThreadCount`: the kernel's count of this process's threads, which
/// `ConnectionThreads` checks against its process limit.
@Suite struct ProcessThreadCountTests {
    @Test func parsesAStatLineWhoseCommandHasSpacesAndParentheses() {
        let fields = (3...52).map { $0 == 20 ? "7" : "\($0)" }.joined(separator: " ")
        let line = Array("1234 (a) b (c)) \(fields)\n".utf8)
        #expect(ProcessThreadCount.threads(inStat: line[...]) == 7)
        #expect(ProcessThreadCount.threads(inStat: Array("1234 (short) S 1".utf8)[...]) == nil)
    }

    @Test func countsThreadsTheWayProcStatusDoes() throws {
        let counter = try ProcessThreadCount()
        func statusThreads() throws -> Int {
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Threads:") })
            return try #require(Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces)))
        }
        // Other tests in this process start and end threads meanwhile (many at once
        // under a sanitizer on a loaded machine), so one pair of readings may differ;
        // a wrong field or a stale read would never agree twice in a row.
        var agreeing = 0
        var pairs = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while agreeing < 2 && ContinuousClock.now < deadline {
            let counted = try #require(counter.current())
            agreeing = counted == (try statusThreads()) ? agreeing + 1 : 0
            pairs += 1
        }
        #expect(agreeing == 2, "no two agreeing readings in a row in \(pairs) pairs")
    }
}
