import Testing
@testable import DIPCProtocol

@Suite("Errors")
struct ErrorTests {
    let info: [DecodeResult] = [.request(.info)]

    // MARK: syntax, connection stays open

    @Test(arguments: [
        "x\n", "read 1\n", "R 1\n", "rr 1\n", "\u{0}\n", "r\r1\n", "\r\r\n",
        "r\n", "r 1 2\n", "r 1 2 3 4\n", "r 1 2 3 4 5 6\n",
        "c\n", "c 1 2 3\n", "i 1\n", "s x\n", "q 1 2\n", "q x\n", "q -1\n",
        "r  1\n", " r 1\n", "r 1 \n", "i \n", " \n", "  \n", "r 1  2 3\n",
        "r +1\n", "r -1\n", "r 1x\n", "r 0x1\n", "r 1.0\n", "r 1e3\n", "r \u{661}\n",
        "r 18446744073709551616\n", "r 99999999999999999999999\n",
        "r 1 18446744073709551616 0\n", "r 1 0 18446744073709551616\n",
        "r 1 0 3600001\n", "r 1 x 5\n", "r 1 5 -1\n", "c 1 3600001\n", "c 1 +5\n", "c x\n",
        "c 18446744073709551616\n", "q 18446744073709551616\n",
        "w\n",
    ])
    func syntaxKeepsConnectionOpen(_ line: String) {
        expectFailure(decode(line + "i\n"), .syntax, closes: false, then: info)
    }

    @Test func syntaxMessages() {
        #expect(decode("x\n").first?.failure?.message == #"unknown request "x""#)
        #expect(decode("x\n").first?.failure?.encoded == bytes("err syntax unknown request \"x\"\n"))
        #expect(decode("r\r1\n").first?.failure?.message == #"unknown request "r\x0d1""#)
        #expect(decode("r 1x\n").first?.failure?.message == #"mailbox "1x" is not a decimal number"#)
        #expect(decode("r 18446744073709551616\n").first?.failure?.message
            == #"mailbox "18446744073709551616" does not fit in 64 bits"#)
        #expect(decode("r  1\n").first?.failure?.message.contains("empty field") == true)
        #expect(decode("r 1 0 3600001\n").first?.failure?.message.contains("3600001") == true)
    }

    @Test func syntaxIsCheckedBeforeRange() {
        expectFailure(decode("r 9 x 1\n"), .syntax, closes: false)
        expectFailure(decode("r 9 1 3600001\n"), .syntax, closes: false)
        expectFailure(decode("c 9 x\n"), .syntax, closes: false)
    }

    // MARK: header length

    @Test func headerOf256BytesIsAccepted() throws {
        let line = "r " + String(repeating: "0", count: 252) + "1\n"
        try #require(line.utf8.count == 256)
        #expect(decode(line) == [.request(.read(mailbox: 1))])
        let crlf = "r " + String(repeating: "0", count: 251) + "1\r\n"
        try #require(crlf.utf8.count == 256)
        #expect(decode(crlf) == [.request(.read(mailbox: 1))])
    }

    @Test func headerOf257BytesIsRejected() throws {
        let line = "r " + String(repeating: "0", count: 253) + "1\n"
        try #require(line.utf8.count == 257)
        let results = decode(line + "i\n")
        expectFailure(results, .syntax, closes: true)
        #expect(results.first?.failure?.message == "header longer than 256 bytes")
        #expect(decode("r " + String(repeating: "0", count: 252) + "1\r\n").first?.failure?.closesConnection == true)
    }

    @Test func longHeaderIsRejectedBeforeItsEndArrives() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes(String(repeating: "a", count: 255)))
        #expect(decoder.next() == nil)
        decoder.append(bytes("a"))
        let result = decoder.next()
        #expect(result?.failure?.code == .syntax)
        #expect(result?.failure?.closesConnection == true)
        decoder.append(bytes("\ni\n"))
        #expect(decoder.next() == nil)
    }

    @Test func emptyLinesDoNotCountTowardsTheHeaderLimit() {
        let input = String(repeating: "\n", count: 300) + String(repeating: "\r\n", count: 300) + "i\n"
        #expect(decode(input) == info)
    }

    // MARK: w / p syntax

    @Test(arguments: [
        "w 1 x\n", "w 1 -2\n", "w 1 +2\n", "w 1 \n", "w 1 18446744073709551616\n", "w x y\n", "w 1 x 3\n",
        "p 1 x\n", "p 1 x 5\n", "p 1 \n", "p 1 -1\n", "p 1 x 3 4\n",
    ])
    func malformedLengthClosesConnection(_ line: String) {
        expectFailure(decode(line + "hello\ni\n"), .syntax, closes: true)
    }

    @Test(arguments: ["p\n", "p 1\n", "p x\n"])
    func pushWithoutLengthStaysOpen(_ line: String) {
        // No LEN, so no data was announced: nothing to skip.
        expectFailure(decode(line + "i\n"), .syntax, closes: false, then: info)
    }

    @Test(arguments: ["w 1 5 3\n", "w 1 5 \n", "p 1 5 3 4\n", "p 1 5 3 \n"])
    func extraFieldsWithValidLengthDropTheData(_ header: String) {
        // LEN (the third field) is well formed: its 5 data bytes are skipped, as for any rejected write.
        expectFailure(decode(header + "i\nr 1i\n"), .syntax, closes: false, then: info)
    }

    @Test(arguments: ["w x 5\n", "w -1 5\n", "w  5\n", "p x 5\n", "p 1 5 zz\n", "p 1 5 3600001\n", "p +1 5 1\n"])
    func badFieldWithValidLengthDropsTheData(_ header: String) {
        // The 5 data bytes include '\n' and look like a request: they must be skipped.
        expectFailure(decode(header + "i\nr 1i\n"), .syntax, closes: false, then: info)
    }

    @Test(arguments: ["w x 65\n", "p x 65\n", "p 1 65 zz\n", "w x 18446744073709551615\n", "w 1 65 3\n", "p 1 65 3 4\n"])
    func badFieldWithOversizedLengthCloses(_ header: String) {
        expectFailure(decode(header + "i\n"), .syntax, closes: true)
    }

    @Test(arguments: ["w x\n", "w -1\n", "w 18446744073709551616\n", "w 1x\n"])
    func netcatFormWithBadMailboxDropsItsDataLine(_ header: String) {
        expectFailure(decode(header + "hello\ni\n"), .syntax, closes: false, then: info)
        expectFailure(decode(header + "\nw 1\nabc\n"), .syntax, closes: false,
                      then: [.request(.write(mailbox: 1, data: bytes("abc")))])
    }

    // MARK: size

    @Test func sizeIsReportedAtTheHeader() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 1 65\n"))
        let result = decoder.next()
        #expect(result == .failure(ProtocolError(
            code: .size, message: "length 65 exceeds the mailbox size 64", closesConnection: true)))
        decoder.append(bytes(String(repeating: "x", count: 65) + "i\n"))
        #expect(decoder.next() == nil)
    }

    @Test(arguments: ["w 1 65\n", "p 1 65\n", "p 1 65 10\n", "w 1 18446744073709551615\n", "p 0 18446744073709551615 0\n"])
    func sizeCloses(_ header: String) {
        expectFailure(decode(header + "i\n"), .size, closes: true)
    }

    @Test func sizeIsCheckedBeforeRange() {
        expectFailure(decode("w 9 65\n"), .size, closes: true)
        expectFailure(decode("p 9 65\n"), .size, closes: true)
        expectFailure(decode("w 9\n" + String(repeating: "y", count: 65) + "\n"), .size, closes: true)
    }

    @Test func netcatLineLongerThanTheMailboxIsSize() {
        expectFailure(decode("w 1\n123456789\ni\n", mailboxSize: 8), .size, closes: true)
        expectFailure(decode("w 1\n123456789\r\ni\n", mailboxSize: 8), .size, closes: true)
        #expect(decode("w 1\n12345678\r\ni\n", mailboxSize: 8)
            == [.request(.write(mailbox: 1, data: bytes("12345678"))), .request(.info)])
        #expect(decode("w 1\n12345678\ni\n", mailboxSize: 8)
            == [.request(.write(mailbox: 1, data: bytes("12345678"))), .request(.info)])
        #expect(decode("w 1\n\n", mailboxSize: 0) == [.request(.write(mailbox: 1, data: []))])
        expectFailure(decode("w 1\nx\n", mailboxSize: 0), .size, closes: true)
    }

    @Test func syntaxIsCheckedBeforeSizeInTheNetcatForm() {
        // A bad N is syntax even when the data line is longer than the mailbox: the line
        // is skipped (dropped as it arrives, never buffered whole) and the connection stays open.
        let long = String(repeating: "a", count: 5000)
        expectFailure(decode("w x\n" + long + "\ni\n", mailboxSize: 8), .syntax, closes: false, then: info)
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 8)
        decoder.append(bytes("w x\n"))
        #expect(decoder.next() == nil)
        for _ in 0..<100 {
            decoder.append(bytes(long))
            #expect(decoder.next() == nil)
            #expect(decoder.bufferedByteCount == 0)
        }
        decoder.append(bytes("\r\ni\n"))
        #expect(decoder.next()?.failure?.code == .syntax)
        #expect(decoder.next() == .request(.info))
    }

    @Test func netcatLineTooLongIsDetectedWithoutItsEnd() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 8)
        decoder.append(bytes("w 1\n12345678\r"))
        #expect(decoder.next() == nil)  // may still end with "\r\n"
        decoder.append(bytes("x"))
        #expect(decoder.next()?.failure?.code == .size)
        #expect(decoder.next() == nil)

        var big = RequestDecoder(mailboxes: 4, mailboxSize: 8)
        big.append(bytes("w 1\n") + [UInt8](repeating: 65, count: 10_000))
        let result = big.next()
        #expect(result?.failure?.code == .size)
        #expect(result?.failure?.closesConnection == true)
        #expect(big.bufferedByteCount == 0)
    }

    // MARK: range

    @Test func rangeForEveryRequest() {
        let message = "mailbox 7 is not in 0..3"
        let range = DecodeResult.failure(ProtocolError(code: .range, message: message, closesConnection: false))
        #expect(decode("r 7\ni\n") == [range] + info)
        #expect(decode("r 7 1 2\ni\n") == [range] + info)
        #expect(decode("c 7\ni\n") == [range] + info)
        #expect(decode("c 7 9\ni\n") == [range] + info)
        #expect(decode("w 7 5\ni\nr 1i\n") == [range] + info)
        #expect(decode("w 7\nsome line\ni\n") == [range] + info)
        #expect(decode("w 7\r\n\r\ni\n") == [range] + info)
        #expect(decode("p 7 5\ni\nr 1i\n") == [range] + info)
        #expect(decode("p 7 5 100\ni\nr 1i\n") == [range] + info)
        #expect(range.failure?.encoded == bytes("err range mailbox 7 is not in 0..3\n"))
    }

    @Test func rangeWithHugeMailboxNumbers() {
        expectFailure(decode("r 18446744073709551615\ni\n"), .range, closes: false, then: info)
        expectFailure(decode("r 9223372036854775808\ni\n"), .range, closes: false, then: info)
        expectFailure(decode("w 18446744073709551615 1\nxi\n"), .range, closes: false, then: info)
        expectFailure(decode("c 4\ni\n"), .range, closes: false, then: info)
    }

    @Test func rangeIsReportedOnlyAfterTheData() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 4 6\nabc"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.append(bytes("\ndei\n"))
        #expect(decoder.next()?.failure?.code == .range)
        #expect(decoder.next() == .request(.info))
        #expect(decoder.isIdle)
    }

    // MARK: after a closing error

    @Test func nothingIsDecodedAfterAClosingError() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 1 x\ni\n"))
        #expect(decoder.next()?.failure?.closesConnection == true)
        #expect(decoder.next() == nil)
        decoder.append(bytes("i\n"))
        #expect(decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func protocolErrorEncoding() {
        let error = ProtocolError(code: .internal, message: "backend failed\nbadly\r", closesConnection: false)
        #expect(error.encoded == bytes("err internal backend failed badly \n"))
        #expect(ProtocolError(code: .busy, message: "", closesConnection: true).encoded == bytes("err busy\n"))
        #expect(ProtocolError(code: .size, message: "length 5000 exceeds the mailbox size 4096", closesConnection: true)
            .encoded == bytes("err size length 5000 exceeds the mailbox size 4096\n"))
        #expect(ErrorCode.allCases.map(\.rawValue)
            == ["syntax", "range", "size", "busy", "timeout", "shutdown", "full", "empty", "internal", "auth", "unavailable"])
    }
}
