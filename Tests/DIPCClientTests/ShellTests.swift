import Testing
@testable import DIPCClient

@Suite("The shell: parsing lines and running them")
struct ShellTests {
    @Test func parsesCommands() throws {
        #expect(try ShellCommand.parse("r 3") == .read(mailbox: 3))
        #expect(try ShellCommand.parse("  read 12\r") == .read(mailbox: 12))
        #expect(try ShellCommand.parse("w 1 hello  world ") == .write(mailbox: 1, data: Array("hello  world ".utf8)))
        #expect(try ShellCommand.parse("write 0  x") == .write(mailbox: 0, data: Array(" x".utf8)))
        #expect(try ShellCommand.parse("w 2") == .write(mailbox: 2, data: []))
        #expect(try ShellCommand.parse("i") == .info)
        #expect(try ShellCommand.parse("stats") == .stats)
        #expect(try ShellCommand.parse("quit") == .quit)
        #expect(try ShellCommand.parse("help") == .help)
        #expect(try ShellCommand.parse("   ") == .empty)
    }

    @Test func rejectsBadLines() {
        for line in ["r", "r x", "r -1", "r 1 2", "w", "w abc", "frob 1", "q now"] {
            #expect(throws: ShellCommand.UsageError.self, "\(line)") { try ShellCommand.parse(line) }
        }
    }

    @Test func runsAgainstAServer() throws {
        let outcomes = try withFakeServer([
            .expect("r 3\n"), .send("ok 5 2\nhello"),
            .expect("w 3 12\nhello  world"), .send("ok 3\n"),
            .expect("r 9\n"), .send("err range mailbox 9 out of range\n"),
            .expect("i\n"), .send("ok dipc/1 backend=sysv name=x\n"),
            .expect("q\n"), .send("bye\n"),
        ]) { connection -> [DIPCShell.Outcome] in
            let shell = DIPCShell(connection: connection, connect: { throw DIPCClientError.connection("unused") })
            return ["r 3", "w 3 hello  world", "r 9", "bogus", "", "i", "q"].map { shell.execute($0) }
        }
        #expect(outcomes[0].output == Array("hello\n".utf8))
        #expect(outcomes[1].output == Array("3\n".utf8))
        #expect(outcomes[2].errorText == "dipc-client: server error range: mailbox 9 out of range")
        #expect(outcomes[3].errorText?.hasPrefix("dipc-client: unknown command") == true)
        #expect(outcomes[4] == DIPCShell.Outcome())
        #expect(outcomes[5].output == Array("backend=sysv\nname=x\n".utf8))
        #expect(outcomes[6].exit)
    }
}
