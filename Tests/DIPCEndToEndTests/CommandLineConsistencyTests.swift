import Foundation
import Testing

/// Exit statuses, messages and `--help` of dipc, dipcrm and dipc-client agree (SPEC §1):
/// help on stdout with status 0; bad usage is one line `NAME: REASON` on stderr with
/// status 2; a failure at run time is one line `NAME: REASON` with status 1.
@Suite("command-line consistency")
struct CommandLineConsistencyTests {
    static let commands = ["dipc", "dipcrm", "dipc-client"]

    /// Runs a product with the scope's environment.
    static func run(_ scope: Scope, _ command: String, _ args: [String]) throws -> ProcessResult {
        try runProcess(try Binaries.path(command), args, env: scope.env, timeout: E2E.clientTimeout)
    }

    @Test("--help: status 0, usage and exit statuses on stdout, nothing on stderr", arguments: commands)
    func help(command: String) throws {
        try withScope { scope in
            for flag in ["--help", "-h"] {
                let r = try Self.run(scope, command, [flag])
                #expect(r.status == 0 && r.err.isEmpty, "\(r)")
                #expect(r.out.hasPrefix("OVERVIEW: ") && r.out.contains("USAGE: \(command) "), "\(r)")
                #expect(r.out.contains("Exit status: 0 "), "--help must state the exit statuses: \(r)")
                #expect(r.out.contains("\(command)(1)"), "--help must point at the man page: \(r)")
            }
        }
    }

    @Test("bad usage: status 2, one line NAME: REASON on stderr, nothing on stdout", arguments: commands)
    func badUsage(command: String) throws {
        try withScope { scope in
            let cases: [[String]] = [[], ["--no-such-option"], ["1", "2", "3", "4", "5", "6"], ["-5"]]
            for args in cases {
                let r = try Self.run(scope, command, args)
                #expect(r.status == 2, "\(r)")
                #expect(r.stdout.isEmpty, "\(r)")
                let lines = r.err.split(separator: "\n", omittingEmptySubsequences: false)
                #expect(lines.count == 2 && lines[1].isEmpty && lines[0].hasPrefix("\(command): "), "one line: \(r)")
            }
        }
    }

    @Test("failures at run time: status 1, one line NAME: REASON on stderr")
    func runtimeFailures() throws {
        try withServer("sysv") { server, scope in
            let port = "\(server.port)"
            let taken = try Self.run(scope, "dipc", ["2", "1", port, "1"])
            #expect(taken.status == 1 && taken.stdout.isEmpty, "\(taken)")
            #expect(taken.err.hasPrefix("dipc: ") && taken.err.split(separator: "\n").count == 1, "\(taken)")
            let free = try freePort()
            let nothing = try Self.run(scope, "dipcrm", ["\(free)"])
            #expect(nothing.status == 1 && nothing.err == "dipcrm: no dipc server on port \(free)\n", "\(nothing)")
            let unreachable = try Self.run(scope, "dipc-client", ["--port", "\(free)", "info"])
            #expect(unreachable.status == 1 && unreachable.err.hasPrefix("dipc-client: "), "\(unreachable)")
            #expect(unreachable.err.split(separator: "\n").count == 1, "\(unreachable)")
            let refused = try Self.run(scope, "dipc-client", ["--port", port, "read", "4"])
            #expect(refused.status == 1 && refused.err.hasPrefix("dipc-client: server error range"), "\(refused)")
        }
    }
}
