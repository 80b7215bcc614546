import Testing
@testable import DIPCProtocol
import DIPCTestSupport

/// ASCII/UTF-8 bytes of a string.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Feeds `chunks` one by one, draining `next()` after each append.
func feed(_ chunks: [[UInt8]], mailboxes: Int, mailboxSize: Int) -> [DecodeResult] {
    var decoder = RequestDecoder(mailboxes: mailboxes, mailboxSize: mailboxSize)
    var results: [DecodeResult] = []
    for chunk in chunks {
        decoder.append(chunk)
        while let result = decoder.next() { results.append(result) }
    }
    return results
}

/// Splits `input` before each index in `cuts` (sorted, in 1..<input.count).
func split(_ input: [UInt8], at cuts: [Int]) -> [[UInt8]] {
    var chunks: [[UInt8]] = []
    var start = 0
    for cut in cuts where cut > start && cut < input.count {
        chunks.append(Array(input[start..<cut]))
        start = cut
    }
    chunks.append(Array(input[start...]))
    return chunks
}

/// Decodes `input` fed all at once, byte by byte, and in uneven chunks; expects the same
/// results every time and returns them.
func decode(
    _ input: [UInt8], mailboxes: Int = 4, mailboxSize: Int = 64,
    sourceLocation: SourceLocation = #_sourceLocation
) -> [DecodeResult] {
    let whole = feed([input], mailboxes: mailboxes, mailboxSize: mailboxSize)
    let byteByByte = feed(input.map { [$0] }, mailboxes: mailboxes, mailboxSize: mailboxSize)
    #expect(byteByByte == whole, "byte by byte differs", sourceLocation: sourceLocation)
    var generator = SplitMix64(seed: UInt64(input.count))
    let cuts = (0..<3).map { _ in Int.random(in: 0...max(0, input.count), using: &generator) }.sorted()
    let chunked = feed(split(input, at: cuts), mailboxes: mailboxes, mailboxSize: mailboxSize)
    #expect(chunked == whole, "chunked at \(cuts) differs", sourceLocation: sourceLocation)
    return whole
}

func decode(_ text: String, mailboxes: Int = 4, mailboxSize: Int = 64,
            sourceLocation: SourceLocation = #_sourceLocation) -> [DecodeResult] {
    decode(bytes(text), mailboxes: mailboxes, mailboxSize: mailboxSize, sourceLocation: sourceLocation)
}

/// The failure of a result, if it is one.
extension DecodeResult {
    var failure: ProtocolError? {
        if case .failure(let error) = self { return error }
        return nil
    }
}

/// Expects `results` to be exactly one failure with this code and connection behaviour,
/// possibly followed by the `then` results.
func expectFailure(
    _ results: [DecodeResult], _ code: ErrorCode, closes: Bool, then rest: [DecodeResult] = [],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let first = results.first, let error = first.failure else {
        Issue.record("expected err \(code), got \(results)", sourceLocation: sourceLocation)
        return
    }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(error.closesConnection == closes, "\(error)", sourceLocation: sourceLocation)
    #expect(!error.message.isEmpty && !error.message.contains("\n"), sourceLocation: sourceLocation)
    #expect(Array(results.dropFirst()) == rest, sourceLocation: sourceLocation)
}
