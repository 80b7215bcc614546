import Testing
@testable import DIPCProtocol

/// `a TOKEN` and the refusals before it (SPEC §2, `--auth-file`).
@Suite("Authentication")
struct AuthenticationTests {
    static let token = "0123456789abcdef-TOKEN"

    /// Decodes `text` for a server with `--auth-file`, calling `authenticated()` after
    /// every `a` (as the server does for the right token).
    static func decodeGuarded(_ text: String, mailboxes: Int = 4, mailboxSize: Int = 64) -> [DecodeResult] {
        var decoder = RequestDecoder(mailboxes: mailboxes, mailboxSize: mailboxSize, requiresAuthentication: true)
        decoder.append(bytes(text))
        var results: [DecodeResult] = []
        while let result = decoder.next() {
            results.append(result)
            if case .request(.authenticate) = result { decoder.authenticated() }
        }
        return results
    }

    static let refused = DecodeResult.failure(.authenticationRequired)

    @Test func theRequestForm() {
        #expect(decode("a \(Self.token)\n") == [.request(.authenticate(token: bytes(Self.token)))])
        let longest = String(repeating: "~", count: 200)
        #expect(decode("a \(longest)\n", mailboxSize: 64) == [.request(.authenticate(token: bytes(longest)))])
        #expect(decode("a !!!!!!!!!!!!!!!!\r\n") == [.request(.authenticate(token: bytes(String(repeating: "!", count: 16))))])
    }

    @Test func malformedTokensAreSyntaxErrorsThatNeverQuoteTheToken() {
        for line in ["a\n", "a \n", "a 0123456789abcde\n", "a \(String(repeating: "x", count: 201))\n",
                     "a \(Self.token) extra\n", "a  \(Self.token)\n", "a 0123456789abcdef\u{7f}\n"] {
            let results = decode(line)
            expectFailure(results, .syntax, closes: false)
            #expect(!(results.first?.failure?.message.contains("0123456789") ?? true), "\(results)")
        }
    }

    @Test func beforeAuthenticationOnlyAAndQAreServed() {
        #expect(Self.decodeGuarded("r 0\ni\ns\nc 1\nr 0 1 5\n") == Array(repeating: Self.refused, count: 5))
        #expect(Self.decodeGuarded("q\n") == [.request(.quit)])
        // A range error would tell the geometry: it is refused like any other request.
        #expect(Self.decodeGuarded("r 9\n") == [Self.refused])
    }

    @Test func theDataOfARefusedWriteOrPushIsDroppedInSync() {
        #expect(Self.decodeGuarded("w 0 5\nr 0\nxq\n") == [Self.refused, .request(.quit)])
        #expect(Self.decodeGuarded("p 1 3 10\nabcq\n") == [Self.refused, .request(.quit)])
        #expect(Self.decodeGuarded("w 9 2\nabq\n") == [Self.refused, .request(.quit)])
        #expect(Self.decodeGuarded("w 0\nr 1\nq\n") == [Self.refused, .request(.quit)])
    }

    @Test func syntaxAndSizeErrorsKeepTheirUsualRule() {
        expectFailure(Self.decodeGuarded("x\n"), .syntax, closes: false)
        expectFailure(Self.decodeGuarded("w 0 x\n"), .syntax, closes: true)
        expectFailure(Self.decodeGuarded("w x 2\nabq\n"), .syntax, closes: false, then: [.request(.quit)])
        expectFailure(Self.decodeGuarded("w 0 65\n"), .size, closes: true)
    }

    @Test func requestsAfterASuccessfulAAreServedEvenPipelined() {
        #expect(Self.decodeGuarded("r 0\na \(Self.token)\nw 0 2\nhir 0\n") == [
            Self.refused, .request(.authenticate(token: bytes(Self.token))),
            .request(.write(mailbox: 0, data: bytes("hi"))), .request(.read(mailbox: 0)),
        ])
    }

    @Test func tokensAreComparedWhole() {
        let token = bytes(Self.token)
        #expect(AuthenticationToken.matches(token, token))
        #expect(!AuthenticationToken.matches(token.dropLast() + [0x21], token))
        #expect(!AuthenticationToken.matches(Array(token.dropLast()), token))
        #expect(!AuthenticationToken.matches(token + [0x21], token))
        #expect(!AuthenticationToken.matches([], token))
    }
}
