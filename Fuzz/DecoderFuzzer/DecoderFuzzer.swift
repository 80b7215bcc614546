// libFuzzer target for the request decoder (built only when FUZZ is set; see Fuzz/README.md).
//
// Input layout: byte 0 picks the geometry, byte 1 the split step; the rest is the
// byte stream a client sends. The stream is decoded twice — whole, and in pieces —
// and both must give the same results. Invariants checked on every result.
import DIPCProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func decoderFuzzTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 2 else { return 0 }
    let mailboxes = Int(data[0] & 0x0F) + 1
    let mailboxSize = 16 << Int(data[0] >> 4 & 0x07)  // 16 B ... 2 KiB
    let step = Int(data[1]) % 17 + 1
    let stream = Array(UnsafeBufferPointer(start: data + 2, count: size - 2))

    let whole = decodeAll(stream, pieces: [stream.count], mailboxes: mailboxes, mailboxSize: mailboxSize)
    var pieces: [Int] = []
    var remaining = stream.count
    while remaining > 0 {
        pieces.append(min(step, remaining))
        remaining -= step
    }
    let split = decodeAll(stream, pieces: pieces, mailboxes: mailboxes, mailboxSize: mailboxSize)
    precondition(whole == split, "splitting the stream changed the results")
    for result in whole {
        switch result {
        case let .request(request):
            check(request, mailboxes: mailboxes, mailboxSize: mailboxSize)
        case let .failure(error):
            precondition(!error.encoded.dropLast().contains(UInt8(ascii: "\n")), "error line has a newline")
            precondition(error.encoded.last == UInt8(ascii: "\n"), "error line does not end with newline")
        }
    }
    return 0
}

private func decodeAll(_ stream: [UInt8], pieces: [Int], mailboxes: Int, mailboxSize: Int) -> [DecodeResult] {
    var decoder = RequestDecoder(mailboxes: mailboxes, mailboxSize: mailboxSize)
    var results: [DecodeResult] = []
    var offset = 0
    for count in pieces {
        decoder.append(Array(stream[offset..<offset + count]))
        offset += count
        while let result = decoder.next() {
            results.append(result)
            if case let .failure(error) = result, error.closesConnection { return results }
        }
    }
    return results
}

private func check(_ request: Request, mailboxes: Int, mailboxSize: Int) {
    switch request {
    case let .read(mailbox), let .consume(mailbox, _), let .watch(mailbox, _, _):
        precondition((0..<mailboxes).contains(mailbox), "mailbox out of range")
    case let .write(mailbox, data), let .push(mailbox, data, _):
        precondition((0..<mailboxes).contains(mailbox), "mailbox out of range")
        precondition(data.count <= mailboxSize, "value larger than the mailbox")
    case .quit, .info, .stats:
        break
    case let .authenticate(token):
        precondition(AuthenticationToken.isValid(token), "a token of the wrong shape")
    }
    switch request {
    case let .watch(_, _, wait), let .push(_, _, wait), let .consume(_, wait):
        precondition(wait <= RequestDecoder.maximumWaitMilliseconds, "wait too long")
    default:
        break
    }
}
