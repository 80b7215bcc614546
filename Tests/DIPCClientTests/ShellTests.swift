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
        #expect(try ShellCommand.parse("r 1 7 250") == .watch(mailbox: 1, afterVersion: 7, waitMilliseconds: 250))
        #expect(try ShellCommand.parse("p 3 a job") == .push(mailbox: 3, data: Array("a job".utf8)))
        #expect(try ShellCommand.parse("push 3") == .push(mailbox: 3, data: []))
        #expect(try ShellCommand.parse("c 3") == .take(mailbox: 3, waitMilliseconds: 0))
        #expect(try ShellCommand.parse("take 3 1000") == .take(mailbox: 3, waitMilliseconds: 1000))
        #expect(try ShellCommand.parse("i") == .info)
        #expect(try ShellCommand.parse("stats") == .stats)
        #expect(try ShellCommand.parse("quit") == .quit)
        #expect(try ShellCommand.parse("help") == .help)
        #expect(try ShellCommand.parse("   ") == .empty)
    }

    @Test func rejectsBadLines() {
        for line in [
            "r", "r x", "r -1", "r 1 2", "r 1 2 3 4", "r 1 x 5", "r 1 2 3600001", "w", "w abc", "p", "p x", "c",
            "c 1 2 3", "c 1 -5", "frob 1", "q now",
        ] {
            #expect(throws: ShellCommand.UsageError.self, "\(line)") { try ShellCommand.parse(line) }
        }
    }

    @Test func runsAgainstAServer() throws {
        let outcomes = try withFakeServer([
            .expect("r 3\n"), .send("ok 5 2\nhello"),
            .expect("w 3 12\nhello  world"), .send("ok 3\n"),
            .expect("r 9\n"), .send("err range mailbox 9 out of range\n"),
            .expect("i\n"), .send("ok dipc/1 backend=sysv name=x\n"),
            .expect("p 2 3\njob"), .send("ok 4\n"),
            .expect("c 2 500\n"), .send("ok 3 5\njob"),
            .expect("c 2\n"), .send("err empty mailbox 2 has no message\n"),
            .expect("r 3 3 100\n"), .send("ok 1 4\nz"),
            .expect("q\n"), .send("bye\n"),
        ]) { connection -> [DIPCShell.Outcome] in
            let shell = DIPCShell(connection: connection, connect: { throw DIPCClientError.connection("unused") })
            return ["r 3", "w 3 hello  world", "r 9", "bogus", "", "i", "p 2 job", "c 2 500", "c 2", "r 3 3 100", "q"]
                .map { shell.execute($0) }
        }
        #expect(outcomes[0].output == Array("hello\n".utf8))
        #expect(outcomes[1].output == Array("3\n".utf8))
        #expect(outcomes[2].errorText == "dipc-client: server error range: mailbox 9 out of range")
        #expect(outcomes[3].errorText?.hasPrefix("dipc-client: unknown command") == true)
        #expect(outcomes[4] == DIPCShell.Outcome())
        #expect(outcomes[5].output == Array("backend=sysv\nname=x\n".utf8))
        #expect(outcomes[6].output == Array("4\n".utf8))
        #expect(outcomes[7].output == Array("job\n".utf8))
        #expect(outcomes[8].errorText == "dipc-client: server error empty: mailbox 2 has no message")
        #expect(outcomes[9].output == Array("z\n".utf8))
        #expect(outcomes[10].exit)
    }
}
