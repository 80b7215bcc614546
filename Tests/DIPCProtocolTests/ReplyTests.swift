import Testing
@testable import DIPCProtocol

@Suite("Reply encoders")
struct ReplyTests {
    @Test func value() {
        #expect(Reply.value(length: 5, version: 7) == bytes("ok 5 7\n"))
        #expect(Reply.value(length: 0, version: 0) == bytes("ok 0 0\n"))
        #expect(Reply.value(length: 1_048_576, version: UInt64.max) == bytes("ok 1048576 18446744073709551615\n"))
    }

    @Test func version() {
        #expect(Reply.version(0) == bytes("ok 0\n"))
        #expect(Reply.version(10) == bytes("ok 10\n"))
        #expect(Reply.version(1234567890) == bytes("ok 1234567890\n"))
        #expect(Reply.version(UInt64.max) == bytes("ok 18446744073709551615\n"))
    }

    @Test func bye() {
        #expect(Reply.bye == bytes("bye\n"))
    }

    @Test func keyValues() {
        #expect(Reply.keyValues([("backend", "sysv"), ("mailboxes", "4")], prefix: "dipc/1")
            == bytes("ok dipc/1 backend=sysv mailboxes=4\n"))
        #expect(Reply.keyValues([("reads", "0"), ("uptime_s", "12")]) == bytes("ok reads=0 uptime_s=12\n"))
        #expect(Reply.keyValues([]) == bytes("ok\n"))
        #expect(Reply.keyValues([], prefix: "dipc/1") == bytes("ok dipc/1\n"))
        #expect(Reply.keyValues([("a b", "c\nd")]) == bytes("ok a_b=c_d\n"))
    }
}
