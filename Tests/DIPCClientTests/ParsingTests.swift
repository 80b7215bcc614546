import Testing
@testable import DIPCClient

@Suite("Reply parsing and the receive buffer")
struct ParsingTests {
    @Test func errorLines() {
        #expect(throws: DIPCClientError.server(code: "syntax", message: "unknown op 'x'")) {
            try ReplyParsing.throwIfError("err syntax unknown op 'x'")
        }
        #expect(throws: DIPCClientError.server(code: "", message: "")) { try ReplyParsing.throwIfError("err") }
        #expect(throws: Never.self) { try ReplyParsing.throwIfError("error-free ok") }
    }

    @Test func decimals() {
        #expect(ReplyParsing.decimal("0") == 0)
        #expect(ReplyParsing.decimal("18446744073709551615") == UInt64.max)
        #expect(ReplyParsing.decimal("18446744073709551616") == nil)
        #expect(ReplyParsing.decimal("+1") == nil)
        #expect(ReplyParsing.decimal("") == nil)
        #expect(ReplyParsing.decimal("1a") == nil)
    }

    @Test func dataHeaderAndVersion() throws {
        #expect(try ReplyParsing.dataHeader("ok 12 3", request: "r 0") == (12, 3))
        #expect(try ReplyParsing.version("ok 42", request: "w 0 1") == 42)
        #expect(throws: DIPCClientError.self) { try ReplyParsing.version("ok 1 2", request: "w 0 1") }
    }

    @Test func receiveBufferLines() {
        var buffer = ReceiveBuffer()
        _ = buffer.fill { $0.append(contentsOf: Array("ok 1\r\npartial".utf8)); return 13 }
        #expect(buffer.takeLine() == Array("ok 1".utf8))
        #expect(buffer.takeLine() == nil)
        _ = buffer.fill { $0.append(contentsOf: Array(" line\nabc".utf8)); return 9 }
        #expect(buffer.takeLine() == Array("partial line".utf8))
        #expect(buffer.take(upTo: 10) == Array("abc".utf8))
        #expect(buffer.isEmpty)
    }
}
