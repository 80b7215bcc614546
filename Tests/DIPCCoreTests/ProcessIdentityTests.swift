import Glibc
import Testing
@testable import DIPCCore

@Suite("Process identity")
struct ProcessIdentityTests {
    @Test("the current process runs, with the start time it reports")
    func currentProcessRuns() {
        let me = ProcessIdentity.current()
        #expect(me.startTime > 0)
        #expect(ProcessIdentity.lookup(me.pid) == .running(startTime: me.startTime))
        #expect(me.isAlive)
    }

    @Test("another start time on the same pid is another process")
    func recycledPidIsNotAlive() {
        let me = ProcessIdentity.current()
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive)
    }

    @Test("an exited child is gone, as a zombie and once reaped")
    func exitedChildIsGone() throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { argv.forEach { free($0) } }
        try #require(posix_spawn(&pid, "/bin/true", nil, nil, argv, environ) == 0)
        // Until it is reaped it is a zombie, which must count as gone.
        #expect(waitUntilGone(pid), "a zombie still counts as running")
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(ProcessIdentity.lookup(pid) == .gone)
    }

    @Test("pid 0 and negative pids are never a process")
    func invalidPids() {
        #expect(ProcessIdentity.lookup(0) == .gone)
        #expect(ProcessIdentity.lookup(-5) == .gone)
    }

    private func waitUntilGone(_ pid: pid_t) -> Bool {
        let deadline = monotonicSeconds() + 10
        while monotonicSeconds() < deadline {
            if ProcessIdentity.lookup(pid) == .gone { return true }
            usleep(1_000)
        }
        return false
    }
}
