import Testing
@testable import DIPCProtocol

@Suite("isIdle and bufferedByteCount")
struct IdleTests {
    @Test func freshDecoderIsIdle() {
        let decoder = RequestDecoder(mailboxes: 1, mailboxSize: 1)
        #expect(decoder.isIdle)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func partialHeaderIsNotIdle() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("r"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        #expect(decoder.bufferedByteCount == 1)
        decoder.append(bytes(" 1\n"))
        #expect(!decoder.isIdle)  // a complete request not yet taken is still pending
        #expect(decoder.next() == .request(.read(mailbox: 1)))
        #expect(decoder.isIdle)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func emptyLinesAreIdle() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("\n\r\n\n"))
        #expect(decoder.isIdle)
        #expect(decoder.next() == nil)
        #expect(decoder.isIdle)
        // A lone `\r` is a line not yet ended: a client stalling after it is timed out.
        decoder.append(bytes("\r"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.append(bytes("\n"))
        #expect(decoder.next() == nil)
        #expect(decoder.isIdle)
        decoder.append(bytes("\r\r"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
    }

    @Test func pendingDataIsNotIdle() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 1 5\nhe"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        #expect(decoder.bufferedByteCount == 2)
        decoder.append(bytes("l"))
        #expect(decoder.bufferedByteCount == 3)
        decoder.append(bytes("lor 2"))
        #expect(decoder.next() == .request(.write(mailbox: 1, data: bytes("hello"))))
        #expect(!decoder.isIdle)
        #expect(decoder.bufferedByteCount == 3)
        decoder.append(bytes("\n"))
        #expect(decoder.next() == .request(.read(mailbox: 2)))
        #expect(decoder.isIdle)
    }

    @Test func droppedDataIsNotIdle() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 9 5\nhe"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        #expect(decoder.bufferedByteCount == 0)
        decoder.append(bytes("llo"))
        #expect(decoder.next()?.failure?.code == .range)
        #expect(decoder.isIdle)
    }

    @Test func netcatLineIsNotIdle() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("w 1\n"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.append(bytes("abc"))
        #expect(decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.append(bytes("\n"))
        #expect(decoder.next() == .request(.write(mailbox: 1, data: bytes("abc"))))
        #expect(decoder.isIdle)
    }
}
