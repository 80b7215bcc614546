import Foundation
import Testing

/// `dipc-client push`, `take` and `watch`, black-box (exit codes as SPEC §1).
@Suite("dipc-client queues")
struct ClientQueueCommandTests {
    @Test("push TEXT / push from stdin, take prints exactly the oldest; err empty and err full exit 1", arguments: E2E.builtBackends)
    func pushAndTake(backend: String) throws {
        try withServer(backend, mailboxKB: 1) { server, scope in
            let p = ["--port", "\(server.port)"]
            let first = try scope.client(p + ["push", "1", "first"])
            #expect(first.status == 0 && first.out == "1\n", "\(first)")
            let binary = (0...255).map { UInt8($0) } + Array("\n".utf8)
            let second = try scope.client(p + ["push", "1"], stdin: binary)
            #expect(second.status == 0 && second.out == "2\n", "\(second)")
            let t1 = try scope.client(p + ["take", "1"])
            #expect(t1.status == 0 && t1.stdout == Array("first".utf8), "\(t1)")
            let t2 = try scope.client(p + ["take", "1", "--wait", "100"])
            #expect(t2.status == 0 && t2.stdout == binary, "take 1 not verbatim: \(t2.stdout.count) bytes, status \(t2.status)")
            let empty = try scope.client(p + ["take", "1"])
            #expect(empty.status == 1 && empty.err.contains("empty") && empty.stdout.isEmpty, "\(empty)")
            let start = monotonicNow()
            let waited = try scope.client(p + ["take", "1", "--wait", "200"])
            #expect(waited.status == 1 && monotonicNow() - start >= 0.18, "take --wait 200 on an empty queue: \(waited)")
            // Fill the 1 KiB mailbox, then a push with a short wait fails with err full.
            let big = try scope.client(p + ["push", "2"], stdin: [UInt8](repeating: 7, count: 1024))
            #expect(big.status == 0, "\(big)")
            let full = try scope.client(p + ["push", "2", "x", "--wait", "50"])
            #expect(full.status == 1 && full.err.contains("full"), "\(full)")
            #expect(try server.connect().request("r 1") == "ok 0 4", "takes did not change the version as expected")
        }
    }

    @Test("watch: --after VERSION waits for a write from another client; times out with the current value")
    func watch() throws {
        try withServer("sysv") { server, scope in
            let p = ["--port", "\(server.port)"]
            #expect(try server.connect().write(0, "one") == 1)
            let child = try ChildProcess(try Binaries.path("dipc-client"), p + ["watch", "0", "--after", "1", "--wait", "20000"], env: scope.env)
            #expect(try server.connect().write(0, "two") == 2)
            let woken = child.wait(timeout: 10)
            #expect(woken.status == 0 && woken.out == "two" && woken.err == "version 2\n", "\(woken)")
            let start = monotonicNow()
            let idle = try scope.client(p + ["watch", "0", "--wait", "200"])
            #expect(idle.status == 0 && idle.out == "two" && monotonicNow() - start >= 0.18, "watch with no change: \(idle)")
        }
    }

    @Test("bad --wait values are usage errors (exit 2)")
    func badWait() throws {
        try withServer("sysv") { server, scope in
            let p = ["--port", "\(server.port)"]
            for args in [["take", "0", "--wait", "3600001"], ["push", "0", "x", "--wait", "-1"], ["watch", "0", "--wait", "99999999"]] {
                let r = try scope.client(p + args)
                #expect(r.status == 2, "\(args.joined(separator: " ")): \(r)")
            }
            #expect(try server.connect().request("r 0") == "ok 0 0", "a rejected command reached the server")
        }
    }
}
