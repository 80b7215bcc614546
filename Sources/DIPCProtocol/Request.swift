/// One decoded client request (SPEC §2). Mailbox numbers are already range-checked.
public enum Request: Equatable, Sendable {
    /// `r N`
    case read(mailbox: Int)
    /// `r N VERSION WAIT_MS`
    case watch(mailbox: Int, afterVersion: UInt64, waitMilliseconds: Int)
    /// `w N LEN` + LEN bytes, or netcat form `w N` + one line; `data` is complete.
    case write(mailbox: Int, data: [UInt8])
    /// `p N LEN [WAIT_MS]` + LEN bytes (WAIT_MS defaults to 0).
    case push(mailbox: Int, data: [UInt8], waitMilliseconds: Int)
    /// `c N [WAIT_MS]` (WAIT_MS defaults to 0).
    case consume(mailbox: Int, waitMilliseconds: Int)
    /// `q` or `q N`
    case quit
    /// `i`
    case info
    /// `s`
    case stats
    /// `a TOKEN`: TOKEN is 16-200 visible ASCII characters (0x21-0x7e). Never log it.
    case authenticate(token: [UInt8])
}

/// What the decoder yields: a request to serve, or an error to answer.
public enum DecodeResult: Equatable, Sendable {
    case request(Request)
    case failure(ProtocolError)
}
