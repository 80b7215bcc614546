import Testing
@testable import DIPCProtocol

/// Large requests arriving in small pieces decode exactly (a quadratic decoder would
/// make these take minutes; speed itself is measured by `make bench`, not asserted).
@Suite("Large inputs")
struct LargeInputTests {
    @Test func largeWriteInSmallPieces() {
        let size = 16 << 20
        var decoder = RequestDecoder(mailboxes: 2, mailboxSize: size)
        let piece = [UInt8](repeating: 0x0A, count: 1024)
        var result: DecodeResult?
        do {
            decoder.append(bytes("w 1 \(size)\n"))
            #expect(decoder.next() == nil)
            for _ in 0..<(size / piece.count) {
                decoder.append(piece)
                if let next = decoder.next() { result = next }
            }
        }
        guard case .request(.write(let mailbox, let data)) = result else {
            Issue.record("no write decoded")
            return
        }
        #expect(mailbox == 1 && data.count == size && data.allSatisfy { $0 == 0x0A })
    }

    @Test func largeDroppedWriteInSmallPieces() {
        let size = 16 << 20
        var decoder = RequestDecoder(mailboxes: 2, mailboxSize: size)
        let piece = [UInt8](repeating: 0x41, count: 1024)
        var results: [DecodeResult] = []
        do {
            decoder.append(bytes("p 5 \(size)\n"))
            for _ in 0..<(size / piece.count) {
                decoder.append(piece)
                while let next = decoder.next() { results.append(next) }
                #expect(decoder.bufferedByteCount == 0)
            }
        }
        #expect(results.map { $0.failure?.code } == [.range])
    }

    @Test func largeNetcatLineInSmallPieces() {
        let size = 4 << 20
        var decoder = RequestDecoder(mailboxes: 2, mailboxSize: size)
        let piece = [UInt8](repeating: 0x42, count: 1024)
        var results: [DecodeResult] = []
        do {
            decoder.append(bytes("w 0\n"))
            for _ in 0..<(size / piece.count) {
                decoder.append(piece)
                while let next = decoder.next() { results.append(next) }
            }
            decoder.append(bytes("\r\ni\n"))
            while let next = decoder.next() { results.append(next) }
        }
        #expect(results.count == 2)
        #expect(results.last == .request(.info))
        if case .request(.write(0, let data)) = results.first {
            #expect(data.count == size)
        } else {
            Issue.record("no write decoded")
        }
    }

    @Test func manyPipelinedRequests() {
        let count = 200_000
        var input: [UInt8] = []
        for index in 0..<count { input += bytes(index % 2 == 0 ? "r 1\n" : "w 0 3\nabc") }
        var decoder = RequestDecoder(mailboxes: 2, mailboxSize: 16)
        var decoded = 0
        do {
            var offset = 0
            while offset < input.count {
                let end = min(input.count, offset + 1500)
                decoder.append(Array(input[offset..<end]))
                offset = end
                while decoder.next() != nil { decoded += 1 }
            }
        }
        #expect(decoded == count)
        #expect(decoder.isIdle)
    }
}
