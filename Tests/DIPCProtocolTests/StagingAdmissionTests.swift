import Testing
@testable import DIPCProtocol

/// `RequestDecoder(requiresStagingAdmission: true)`: the decoder stops after each header
/// whose data it keeps, says how much it will stage, and decodes exactly as without
/// admission once admitted.
@Suite("staging admission")
struct StagingAdmissionTests {
    /// Feeds `input` whole, admitting every request as soon as it asks; returns the
    /// results and the sizes asked for.
    static func decodeAdmitting(_ input: String, mailboxSize: Int = 64) -> (results: [DecodeResult], asked: [Int]) {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: mailboxSize, requiresStagingAdmission: true)
        decoder.append(bytes(input))
        var results: [DecodeResult] = []
        var asked: [Int] = []
        while true {
            if let result = decoder.next() {
                results.append(result)
            } else if let bytes = decoder.stagingAwaited {
                asked.append(bytes)
                decoder.admitStaging()
            } else {
                return (results, asked)
            }
        }
    }

    @Test("a write's and a push's LEN, and a netcat line's mailbox size, are asked before their data")
    func asksBeforeData() {
        var decoder = RequestDecoder(mailboxes: 4, mailboxSize: 64, requiresStagingAdmission: true)
        decoder.append(bytes("w 1 5\nhel"))
        #expect(decoder.next() == nil)
        #expect(decoder.stagingAwaited == 5)
        #expect(!decoder.isIdle)
        decoder.append(bytes("lo"))
        #expect(decoder.next() == nil, "nothing is decoded before admission")
        decoder.admitStaging()
        #expect(decoder.stagingAwaited == nil)
        #expect(decoder.next() == .request(.write(mailbox: 1, data: bytes("hello"))))
        #expect(decoder.isIdle)
    }

    @Test("admitted, the results are those of a decoder without admission; dropped data asks nothing")
    func sameResults() {
        let input = "r 0\nw 1 3\nabcp 2 2 10\nxyw 3\nnetcat\nw 9 3\nabcw 9\nline\ni\nw 0 0\n"
        let (results, asked) = Self.decodeAdmitting(input)
        #expect(results == decode(input))
        // w 1 3, p 2 2, the netcat line to mailbox 3 (the mailbox size), w 0 0; not the
        // out-of-range write (its 3 bytes are dropped as they come) but the out-of-range
        // netcat line (held whole until its end).
        #expect(asked == [3, 2, 64, 64, 0])
    }

    @Test("a syntax error's line is dropped as it comes: nothing asked")
    func syntaxLineAsksNothing() {
        let (results, asked) = Self.decodeAdmitting("w x\nwhatever\nr 0\n")
        #expect(asked.isEmpty)
        #expect(results.count == 2)
    }
}
