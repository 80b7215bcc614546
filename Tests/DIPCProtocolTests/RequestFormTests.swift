import Testing
@testable import DIPCProtocol

@Suite("Request forms")
struct RequestFormTests {
    @Test func read() {
        #expect(decode("r 1\n") == [.request(.read(mailbox: 1))])
        #expect(decode("r 0\n") == [.request(.read(mailbox: 0))])
        #expect(decode("r 3\n") == [.request(.read(mailbox: 3))])
        #expect(decode("r 0003\n") == [.request(.read(mailbox: 3))])
    }

    @Test func watch() {
        #expect(decode("r 3 17 250\n") == [.request(.watch(mailbox: 3, afterVersion: 17, waitMilliseconds: 250))])
        #expect(decode("r 0 18446744073709551615 0\n")
            == [.request(.watch(mailbox: 0, afterVersion: UInt64.max, waitMilliseconds: 0))])
        #expect(decode("r 1 0 3600000\n")
            == [.request(.watch(mailbox: 1, afterVersion: 0, waitMilliseconds: 3_600_000))])
    }

    @Test func writeWithLength() {
        #expect(decode("w 2 5\nhello") == [.request(.write(mailbox: 2, data: bytes("hello")))])
        #expect(decode("w 0 0\n") == [.request(.write(mailbox: 0, data: []))])
        #expect(decode("w 1 64\n" + String(repeating: "x", count: 64))
            == [.request(.write(mailbox: 1, data: bytes(String(repeating: "x", count: 64))))])
    }

    @Test func writeNetcatForm() {
        #expect(decode("w 2\nhello world\n") == [.request(.write(mailbox: 2, data: bytes("hello world")))])
        #expect(decode("w 2\r\nhi there\r\n") == [.request(.write(mailbox: 2, data: bytes("hi there")))])
        #expect(decode("w 0\n\n") == [.request(.write(mailbox: 0, data: []))])
        #expect(decode("w 0\r\n\r\n") == [.request(.write(mailbox: 0, data: []))])
        // Only one '\r' before the '\n' is dropped; others are data.
        #expect(decode("w 1\na\rb\r\r\n") == [.request(.write(mailbox: 1, data: bytes("a\rb\r")))])
        // The data line may look like a request or be only spaces.
        #expect(decode("w 1\nr 1\n") == [.request(.write(mailbox: 1, data: bytes("r 1")))])
        #expect(decode("w 1\n  \n") == [.request(.write(mailbox: 1, data: bytes("  ")))])
    }

    @Test func push() {
        #expect(decode("p 1 3\nabc") == [.request(.push(mailbox: 1, data: bytes("abc"), waitMilliseconds: 0))])
        #expect(decode("p 1 3 500\nabc")
            == [.request(.push(mailbox: 1, data: bytes("abc"), waitMilliseconds: 500))])
        #expect(decode("p 3 0 3600000\n")
            == [.request(.push(mailbox: 3, data: [], waitMilliseconds: 3_600_000))])
    }

    @Test func consume() {
        #expect(decode("c 2\n") == [.request(.consume(mailbox: 2, waitMilliseconds: 0))])
        #expect(decode("c 2 100\n") == [.request(.consume(mailbox: 2, waitMilliseconds: 100))])
        #expect(decode("c 0 3600000\n") == [.request(.consume(mailbox: 0, waitMilliseconds: 3_600_000))])
    }

    @Test func quitInfoStats() {
        #expect(decode("q\n") == [.request(.quit)])
        #expect(decode("q 1\n") == [.request(.quit)])
        // q N needs no range check.
        #expect(decode("q 99\n") == [.request(.quit)])
        #expect(decode("q 18446744073709551615\n") == [.request(.quit)])
        #expect(decode("i\n") == [.request(.info)])
        #expect(decode("s\n") == [.request(.stats)])
    }

    @Test func carriageReturnLineFeedHeaders() {
        #expect(decode("r 1\r\n") == [.request(.read(mailbox: 1))])
        #expect(decode("r 1 2 3\r\n") == [.request(.watch(mailbox: 1, afterVersion: 2, waitMilliseconds: 3))])
        #expect(decode("w 1 2\r\n\r\n") == [.request(.write(mailbox: 1, data: [13, 10]))])
        #expect(decode("p 1 1 9\r\nx") == [.request(.push(mailbox: 1, data: bytes("x"), waitMilliseconds: 9))])
        #expect(decode("q\r\ni\r\ns\r\n") == [.request(.quit), .request(.info), .request(.stats)])
    }

    @Test func emptyLinesAreIgnored() {
        #expect(decode("\n\n\r\nr 1\n\r\n\n") == [.request(.read(mailbox: 1))])
        #expect(decode("\n") == [])
        #expect(decode("\r\n\r\n") == [])
        // Empty lines between a header and its data are data, not ignored.
        #expect(decode("w 1 2\n\n\ni\n") == [.request(.write(mailbox: 1, data: [10, 10])), .request(.info)])
    }

    @Test func binaryDataWithNewlines() {
        let data = (0...255).map { UInt8($0) } + [10, 13, 10, 13, 13, 10, 0]
        var input = bytes("w 3 \(data.count)\n") + data
        input += bytes("p 2 \(data.count) 7\n") + data
        input += bytes("r 3\n")
        let results = decode(input, mailboxSize: 1024)
        #expect(results == [
            .request(.write(mailbox: 3, data: data)),
            .request(.push(mailbox: 2, data: data, waitMilliseconds: 7)),
            .request(.read(mailbox: 3)),
        ])
    }

    @Test func pipelinedBatch() {
        let input = "r 0\nw 1 3\nabcw 2\nline\np 3 2 10\nxyc 3\nc 3 5\nr 1 4 100\n\r\ni\ns\nq 2\nq\n"
        #expect(decode(input) == [
            .request(.read(mailbox: 0)),
            .request(.write(mailbox: 1, data: bytes("abc"))),
            .request(.write(mailbox: 2, data: bytes("line"))),
            .request(.push(mailbox: 3, data: bytes("xy"), waitMilliseconds: 10)),
            .request(.consume(mailbox: 3, waitMilliseconds: 0)),
            .request(.consume(mailbox: 3, waitMilliseconds: 5)),
            .request(.watch(mailbox: 1, afterVersion: 4, waitMilliseconds: 100)),
            .request(.info),
            .request(.stats),
            .request(.quit),
            .request(.quit),
        ])
    }

    @Test func pipelinedWithRawBufferAppend() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        let input = bytes("r 1\nw 2 3\nabcr 2\n")
        input.withUnsafeBytes { decoder.append($0) }
        var results: [DecodeResult] = []
        while let result = decoder.next() { results.append(result) }
        #expect(results == [
            .request(.read(mailbox: 1)),
            .request(.write(mailbox: 2, data: bytes("abc"))),
            .request(.read(mailbox: 2)),
        ])
        decoder.append(UnsafeRawBufferPointer(start: nil, count: 0))
        #expect(decoder.next() == nil)
    }

    @Test func incompleteRequestsWaitForMoreBytes() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64)
        decoder.append(bytes("r 1"))
        #expect(decoder.next() == nil)
        decoder.append(bytes("\nw 1 4\nab"))
        #expect(decoder.next() == .request(.read(mailbox: 1)))
        #expect(decoder.next() == nil)
        decoder.append(bytes("c"))
        #expect(decoder.next() == nil)
        decoder.append(bytes("dw 2\nline"))
        #expect(decoder.next() == .request(.write(mailbox: 1, data: bytes("abcd"))))
        #expect(decoder.next() == nil)
        decoder.append(bytes("\r"))
        #expect(decoder.next() == nil)
        decoder.append(bytes("\n"))
        #expect(decoder.next() == .request(.write(mailbox: 2, data: bytes("line"))))
        #expect(decoder.next() == nil)
    }
}
