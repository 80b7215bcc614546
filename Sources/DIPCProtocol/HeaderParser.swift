/// Where the data bytes announced by a `w N LEN` / `p N LEN` header go.
enum PayloadTarget: Sendable {
    case write(mailbox: Int)
    case push(mailbox: Int, waitMilliseconds: Int)
    /// Read the bytes, drop them, then report this (non-closing) error.
    case drop(ProtocolError)

    var keepsData: Bool {
        if case .drop = self { return false }
        return true
    }
}

/// What the netcat form `w N` does with its data line.
enum LineTarget: Sendable {
    case write(mailbox: Int)
    /// Consume the line (still size-checked), then report this error.
    case drop(ProtocolError)
}

/// What a complete header line means.
enum HeaderOutcome: Sendable {
    /// Finished: a request without data, or an error.
    case result(DecodeResult)
    /// LEN data bytes follow.
    case payload(length: Int, target: PayloadTarget)
    /// One data line follows (netcat form).
    case line(LineTarget)
}

/// Field ranges of one header line. Only the first four are kept: no request has more.
struct HeaderFields {
    private(set) var count = 0
    private(set) var hasEmptyField = false
    private var f0 = 0..<0, f1 = 0..<0, f2 = 0..<0, f3 = 0..<0

    init(_ line: UnsafeBufferPointer<UInt8>) {
        var start = 0
        var index = 0
        let end = line.count
        while index < end {
            if line[index] == UInt8(ascii: " ") {
                add(start..<index)
                start = index + 1
            }
            index += 1
        }
        add(start..<end)
    }

    private mutating func add(_ range: Range<Int>) {
        if range.isEmpty { hasEmptyField = true }
        switch count {
        case 0: f0 = range
        case 1: f1 = range
        case 2: f2 = range
        case 3: f3 = range
        default: break
        }
        count += 1
    }

    subscript(_ index: Int) -> Range<Int> {
        switch index {
        case 0: return f0
        case 1: return f1
        case 2: return f2
        default: return f3
        }
    }
}

/// Parses one header line (without its `\n` and a `\r` before it; never empty) into an
/// outcome, checking syntax, then size, then range (SPEC §2).
struct HeaderParser {
    let line: UnsafeBufferPointer<UInt8>
    let fields: HeaderFields
    let mailboxes: Int
    let mailboxSize: Int

    init(line: UnsafeBufferPointer<UInt8>, mailboxes: Int, mailboxSize: Int) {
        self.line = line
        self.fields = HeaderFields(line)
        self.mailboxes = mailboxes
        self.mailboxSize = mailboxSize
    }

    static let emptyFieldMessage = "empty field (fields are separated by single spaces)"

    func parse() -> HeaderOutcome {
        let op = fields[0]
        guard op.count == 1 else {
            if op.isEmpty { return syntax(Self.emptyFieldMessage) }
            return syntax("unknown request \(text(0))")
        }
        switch line[op.lowerBound] {
        case UInt8(ascii: "r"): return parseRead()
        case UInt8(ascii: "w"): return parseWrite()
        case UInt8(ascii: "p"): return parsePush()
        case UInt8(ascii: "c"): return parseConsume()
        case UInt8(ascii: "q"):
            if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
            switch fields.count {
            case 1: return .result(.request(.quit))
            case 2:
                guard number(1) != nil else { return syntax(badNumber(1, "mailbox")) }
                return .result(.request(.quit))
            default: return syntax("usage: q [N]")
            }
        case UInt8(ascii: "i"):
            if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
            return fields.count == 1 ? .result(.request(.info)) : syntax("usage: i")
        case UInt8(ascii: "s"):
            if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
            return fields.count == 1 ? .result(.request(.stats)) : syntax("usage: s")
        case UInt8(ascii: "a"): return parseAuthenticate()
        default:
            return syntax("unknown request \(text(0))")
        }
    }

    // MARK: - Requests

    private func parseRead() -> HeaderOutcome {
        if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
        switch fields.count {
        case 2:
            guard let n = number(1) else { return syntax(badNumber(1, "mailbox")) }
            guard let mailbox = mailboxIndex(n) else { return .result(.failure(rangeError(n))) }
            return .result(.request(.read(mailbox: mailbox)))
        case 4:
            guard let n = number(1) else { return syntax(badNumber(1, "mailbox")) }
            guard let version = number(2) else { return syntax(badNumber(2, "version")) }
            guard let wait = number(3) else { return syntax(badNumber(3, "wait")) }
            guard let waitMilliseconds = checkedWait(wait) else { return syntax(waitTooLong(wait)) }
            guard let mailbox = mailboxIndex(n) else { return .result(.failure(rangeError(n))) }
            return .result(.request(.watch(
                mailbox: mailbox, afterVersion: version, waitMilliseconds: waitMilliseconds)))
        default:
            return syntax("usage: r N | r N VERSION WAIT_MS")
        }
    }

    private func parseConsume() -> HeaderOutcome {
        if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
        guard fields.count == 2 || fields.count == 3 else { return syntax("usage: c N [WAIT_MS]") }
        guard let n = number(1) else { return syntax(badNumber(1, "mailbox")) }
        var waitMilliseconds = 0
        if fields.count == 3 {
            guard let wait = number(2) else { return syntax(badNumber(2, "wait")) }
            guard let checked = checkedWait(wait) else { return syntax(waitTooLong(wait)) }
            waitMilliseconds = checked
        }
        guard let mailbox = mailboxIndex(n) else { return .result(.failure(rangeError(n))) }
        return .result(.request(.consume(mailbox: mailbox, waitMilliseconds: waitMilliseconds)))
    }

    private func parseWrite() -> HeaderOutcome {
        switch fields.count {
        case 2:
            // Netcat form: the data line can be skipped, so a bad N drops it like a bad range.
            guard let n = number(1) else {
                return .line(.drop(ProtocolError(code: .syntax, message: badNumber(1, "mailbox"), closesConnection: false)))
            }
            guard let mailbox = mailboxIndex(n) else { return .line(.drop(rangeError(n))) }
            return .line(.write(mailbox: mailbox))
        case 3:
            guard let length = number(2) else {
                return syntax(badNumber(2, "length"), closes: true)
            }
            guard let n = number(1) else {
                return dropOrClose(length: length, message: badNumber(1, "mailbox"))
            }
            guard length <= UInt64(mailboxSize) else { return .result(.failure(sizeError(length))) }
            guard let mailbox = mailboxIndex(n) else {
                return .payload(length: Int(length), target: .drop(rangeError(n)))
            }
            return .payload(length: Int(length), target: .write(mailbox: mailbox))
        case 1:
            return syntax(fields.hasEmptyField ? Self.emptyFieldMessage : "usage: w N LEN | w N")
        default:
            return extraFields(usage: "usage: w N LEN | w N")
        }
    }

    private func parsePush() -> HeaderOutcome {
        guard fields.count == 3 || fields.count == 4 else {
            // Without a LEN no data is announced: nothing to skip, the connection stays open.
            if fields.count < 3 {
                return syntax(fields.hasEmptyField ? Self.emptyFieldMessage : "usage: p N LEN [WAIT_MS]")
            }
            return extraFields(usage: "usage: p N LEN [WAIT_MS]")
        }
        guard let length = number(2) else { return syntax(badNumber(2, "length"), closes: true) }
        guard let n = number(1) else {
            return dropOrClose(length: length, message: badNumber(1, "mailbox"))
        }
        var waitMilliseconds = 0
        if fields.count == 4 {
            guard let wait = number(3) else {
                return dropOrClose(length: length, message: badNumber(3, "wait"))
            }
            guard let checked = checkedWait(wait) else {
                return dropOrClose(length: length, message: waitTooLong(wait))
            }
            waitMilliseconds = checked
        }
        guard length <= UInt64(mailboxSize) else { return .result(.failure(sizeError(length))) }
        guard let mailbox = mailboxIndex(n) else {
            return .payload(length: Int(length), target: .drop(rangeError(n)))
        }
        return .payload(
            length: Int(length), target: .push(mailbox: mailbox, waitMilliseconds: waitMilliseconds))
    }

    /// `a TOKEN`. No message quotes the token: what a client sends in `a` is never echoed.
    private func parseAuthenticate() -> HeaderOutcome {
        if fields.hasEmptyField { return syntax(Self.emptyFieldMessage) }
        guard fields.count == 2 else { return syntax("usage: a TOKEN") }
        let token = UnsafeBufferPointer(rebasing: line[fields[1]])
        guard AuthenticationToken.isValid(token) else {
            return syntax("a token is \(AuthenticationToken.minimumLength)-\(AuthenticationToken.maximumLength) visible ASCII characters")
        }
        return .result(.request(.authenticate(token: Array(token))))
    }

    // MARK: - Helpers

    /// A `w`/`p` with more fields than it takes: its data (LEN, the third field, bytes)
    /// is skipped like any other rejected write's, unless LEN is malformed.
    private func extraFields(usage: String) -> HeaderOutcome {
        let message = fields.hasEmptyField ? Self.emptyFieldMessage : usage
        guard let length = number(2) else { return syntax(message, closes: true) }
        return dropOrClose(length: length, message: message)
    }

    /// A syntax error in a `w`/`p` whose LEN is valid: the data is dropped and the
    /// connection stays open, unless LEN is more than a mailbox holds.
    private func dropOrClose(length: UInt64, message: String) -> HeaderOutcome {
        if length > UInt64(mailboxSize) { return syntax(message, closes: true) }
        return .payload(
            length: Int(length),
            target: .drop(ProtocolError(code: .syntax, message: message, closesConnection: false)))
    }

    private func syntax(_ message: String, closes: Bool = false) -> HeaderOutcome {
        .result(.failure(ProtocolError(code: .syntax, message: message, closesConnection: closes)))
    }

    private func rangeError(_ n: UInt64) -> ProtocolError {
        ProtocolError(
            code: .range, message: "mailbox \(n) is not in 0..\(mailboxes - 1)", closesConnection: false)
    }

    private func sizeError(_ length: UInt64) -> ProtocolError {
        ProtocolError(
            code: .size, message: "length \(length) exceeds the mailbox size \(mailboxSize)",
            closesConnection: true)
    }

    private func mailboxIndex(_ n: UInt64) -> Int? {
        n < UInt64(mailboxes) ? Int(n) : nil
    }

    private func checkedWait(_ wait: UInt64) -> Int? {
        wait <= UInt64(RequestDecoder.maximumWaitMilliseconds) ? Int(wait) : nil
    }

    private func waitTooLong(_ wait: UInt64) -> String {
        "wait \(wait) ms exceeds the maximum of \(RequestDecoder.maximumWaitMilliseconds) ms"
    }

    /// The field as a plain decimal UInt64, or nil (empty, not digits, or overflow).
    func number(_ index: Int) -> UInt64? {
        let range = fields[index]
        if range.isEmpty { return nil }
        var value: UInt64 = 0
        for position in range {
            let digit = line[position] &- UInt8(ascii: "0")
            if digit > 9 { return nil }
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            if overflow1 || overflow2 { return nil }
            value = sum
        }
        return value
    }

    /// Why `number(index)` failed, for the message.
    private func badNumber(_ index: Int, _ name: String) -> String {
        let range = fields[index]
        if range.isEmpty { return Self.emptyFieldMessage }
        if range.allSatisfy({ line[$0] &- UInt8(ascii: "0") <= 9 }) {
            return "\(name) \(text(index)) does not fit in 64 bits"
        }
        return "\(name) \(text(index)) is not a decimal number"
    }

    /// The field quoted for a message: printable ASCII as is, other bytes as `\xNN`,
    /// at most 40 bytes shown.
    func text(_ index: Int) -> String {
        let range = fields[index]
        let shown = range.prefix(40)
        var out = "\""
        for position in shown {
            let byte = line[position]
            if byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = Array("0123456789abcdef".unicodeScalars)
                out += "\\x"
                out.unicodeScalars.append(hex[Int(byte >> 4)])
                out.unicodeScalars.append(hex[Int(byte & 0xF)])
            }
        }
        if shown.count < range.count { out += "..." }
        out += "\""
        return out
    }
}
