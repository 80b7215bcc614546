import Testing
@testable import DIPCProtocol
import DIPCTestSupport

/// Random valid requests (and non-closing range errors), encoded, split at random
/// points, decode back to the same list.
@Suite("Randomized round trip")
struct PropertyTests {
    struct Case {
        var input: [UInt8] = []
        var expected: [DecodeResult] = []
    }

    static func randomData(_ maximum: Int, using rng: inout SplitMix64) -> [UInt8] {
        let count = Int.random(in: 0...maximum, using: &rng)
        let alphabet: [UInt8] = [10, 13, 32, 0, 255] + bytes("rwpcqis0123456789")
        return (0..<count).map { _ in
            Bool.random(using: &rng)
                ? alphabet.randomElement(using: &rng)!
                : UInt8.random(in: 0...255, using: &rng)
        }
    }

    static func number(_ value: Int, using rng: inout SplitMix64) -> String {
        // Leading zeros are allowed.
        String(repeating: "0", count: Int.random(in: 0...3, using: &rng) == 0 ? 1 : 0) + String(value)
    }

    static func makeCase(seed: UInt64) -> (Case, mailboxes: Int, mailboxSize: Int) {
        var rng = SplitMix64(seed: seed)
        let mailboxes = Int.random(in: 1...8, using: &rng)
        let mailboxSize = Int.random(in: 0...300, using: &rng)
        var test = Case()
        func add(_ header: String, _ data: [UInt8] = [], _ result: DecodeResult, rng: inout SplitMix64) {
            let end = Bool.random(using: &rng) ? "\r\n" : "\n"
            test.input += bytes(header + end) + data
            test.expected.append(result)
            if Int.random(in: 0..<8, using: &rng) == 0 {
                test.input += bytes(Bool.random(using: &rng) ? "\n" : "\r\n")
            }
        }
        for _ in 0..<Int.random(in: 0...40, using: &rng) {
            let inRange = Int.random(in: 0..<10, using: &rng) != 0
            let mailbox = inRange
                ? Int.random(in: 0..<mailboxes, using: &rng)
                : Int.random(in: mailboxes...(mailboxes + 100), using: &rng)
            let n = number(mailbox, using: &rng)
            let rangeError = DecodeResult.failure(ProtocolError(
                code: .range, message: "mailbox \(mailbox) is not in 0..\(mailboxes - 1)",
                closesConnection: false))
            func result(_ request: Request) -> DecodeResult { inRange ? .request(request) : rangeError }
            let wait = Int.random(in: 0...RequestDecoder.maximumWaitMilliseconds, using: &rng)
            switch Int.random(in: 0..<9, using: &rng) {
            case 0:
                add("r \(n)", [], result(.read(mailbox: mailbox)), rng: &rng)
            case 1:
                let version = UInt64.random(in: 0...UInt64.max, using: &rng)
                add("r \(n) \(version) \(wait)", [],
                    result(.watch(mailbox: mailbox, afterVersion: version, waitMilliseconds: wait)), rng: &rng)
            case 2:
                let data = randomData(mailboxSize, using: &rng)
                add("w \(n) \(data.count)", data, result(.write(mailbox: mailbox, data: data)), rng: &rng)
            case 3:
                var data = randomData(mailboxSize, using: &rng).filter { $0 != 10 }
                if data.last == 13 { data.removeLast() }
                let end = Bool.random(using: &rng) ? "\r\n" : "\n"
                add("w \(n)", data + bytes(end), result(.write(mailbox: mailbox, data: data)), rng: &rng)
            case 4:
                let data = randomData(mailboxSize, using: &rng)
                if Bool.random(using: &rng) {
                    add("p \(n) \(data.count) \(wait)", data,
                        result(.push(mailbox: mailbox, data: data, waitMilliseconds: wait)), rng: &rng)
                } else {
                    add("p \(n) \(data.count)", data,
                        result(.push(mailbox: mailbox, data: data, waitMilliseconds: 0)), rng: &rng)
                }
            case 5:
                if Bool.random(using: &rng) {
                    add("c \(n) \(wait)", [], result(.consume(mailbox: mailbox, waitMilliseconds: wait)), rng: &rng)
                } else {
                    add("c \(n)", [], result(.consume(mailbox: mailbox, waitMilliseconds: 0)), rng: &rng)
                }
            case 6:
                add(Bool.random(using: &rng) ? "q" : "q \(n)", [], .request(.quit), rng: &rng)
            case 7:
                add("i", [], .request(.info), rng: &rng)
            default:
                add("s", [], .request(.stats), rng: &rng)
            }
        }
        return (test, mailboxes, mailboxSize)
    }

    @Test func randomRequestsSurviveRandomSplits() {
        for seed in UInt64(1)...300 {
            let (test, mailboxes, mailboxSize) = Self.makeCase(seed: seed)
            var rng = SplitMix64(seed: seed &* 7919)
            let whole = feed([test.input], mailboxes: mailboxes, mailboxSize: mailboxSize)
            #expect(whole == test.expected, "seed \(seed)")
            for _ in 0..<4 {
                let cutCount = Int.random(in: 0...max(0, test.input.count / 4), using: &rng)
                let cuts = (0..<cutCount).map { _ in Int.random(in: 0...test.input.count, using: &rng) }.sorted()
                let results = feed(split(test.input, at: cuts), mailboxes: mailboxes, mailboxSize: mailboxSize)
                #expect(results == test.expected, "seed \(seed) cuts \(cuts)")
            }
        }
    }

    @Test func randomRequestsByteByByte() {
        for seed in UInt64(1000)...1040 {
            let (test, mailboxes, mailboxSize) = Self.makeCase(seed: seed)
            let results = feed(test.input.map { [$0] }, mailboxes: mailboxes, mailboxSize: mailboxSize)
            #expect(results == test.expected, "seed \(seed)")
        }
    }
}
