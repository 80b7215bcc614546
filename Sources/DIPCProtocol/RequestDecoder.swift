/// Incremental decoder for one connection. Feed it bytes as they arrive (any split), pull
/// results with `next()` until it returns nil, then feed more.
///
/// Bytes wait in one buffer with a read offset that is compacted now and then. The data
/// of a `w N LEN` / `p N LEN` goes straight from `append` into the request's array (copied
/// once, and never scanned); dropped data is only counted.
///
/// Staging admission (`requiresStagingAdmission`): a server that bounds the memory of
/// data still arriving makes the decoder stop after each header whose data it would
/// keep (`w N LEN`, `p N LEN ...`, and the netcat form `w N`): `next()` returns nil and
/// `stagingAwaited` says how many bytes the request will stage, until the caller has
/// reserved them and calls `admitStaging()`. Bytes appended meanwhile are only buffered.
public struct RequestDecoder: Sendable {
    /// Longest header line, counting its `\n`.
    public static let maximumHeaderLength = 256
    /// Largest WAIT_MS of `r`, `p` and `c`.
    public static let maximumWaitMilliseconds = 3_600_000

    private enum Phase: Sendable {
        case header
        case payload(PayloadTarget)
        case line(LineTarget)
        /// A header whose data is kept was decoded; waiting for `admitStaging()`.
        case awaitingAdmission(HeaderOutcome)
        /// After an error that closes the connection: nothing more is decoded.
        case closed
    }

    private let mailboxes: Int
    private let mailboxSize: Int
    private let requiresStagingAdmission: Bool

    private var buffer: [UInt8] = []
    /// Start of the unconsumed bytes in `buffer`.
    private var readOffset = 0
    /// How many unconsumed bytes are already known to hold no `\n` (header and line phases).
    private var scanned = 0
    private var phase: Phase = .header
    /// Until `authenticated()`, every request but `a` and `q` is refused (`--auth-file`).
    private var refusesUntilAuthenticated = false

    /// Payload phase: the data received so far (when kept) and the bytes still missing.
    /// While bytes are missing, `buffer` holds no unconsumed bytes.
    private var payload: [UInt8] = []
    private var payloadKept = false
    private var payloadRemaining = 0

    /// Keep this much consumed space before moving the rest of the buffer to its start.
    private static let compactionThreshold = 4096
    /// An empty buffer with more capacity than this is released.
    private static let retainedCapacity = 64 * 1024

    /// A decoder for a store of `mailboxes` mailboxes of `mailboxSize` bytes. With
    /// `requiresAuthentication`, headers decoded before `authenticated()` is called are
    /// refused as SPEC §2 says (see `HeaderOutcome.refusedUntilAuthenticated`). With
    /// `requiresStagingAdmission`, it waits for `admitStaging()` before the data of each
    /// request that keeps data (see the type's documentation).
    public init(mailboxes: Int, mailboxSize: Int, requiresAuthentication: Bool = false,
                requiresStagingAdmission: Bool = false) {
        precondition(mailboxes >= 0 && mailboxSize >= 0, "negative geometry")
        self.mailboxes = mailboxes
        self.mailboxSize = mailboxSize
        self.refusesUntilAuthenticated = requiresAuthentication
        self.requiresStagingAdmission = requiresStagingAdmission
    }

    /// The connection presented the right token: later headers are decoded as usual.
    /// Results are decoded one `next()` at a time, so a pipelined request after the `a`
    /// is served once this is called.
    public mutating func authenticated() {
        refusesUntilAuthenticated = false
    }

    // MARK: - Input

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        appendBytes(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { appendBytes($0) }
    }

    private mutating func appendBytes(_ bytes: UnsafeBufferPointer<UInt8>) {
        if case .closed = phase { return }
        var rest = bytes[...]
        if payloadRemaining > 0 {
            let take = min(payloadRemaining, rest.count)
            if payloadKept {
                payload.append(contentsOf: UnsafeBufferPointer(rebasing: rest.prefix(take)))
            }
            payloadRemaining -= take
            rest = rest.dropFirst(take)
            if rest.isEmpty { return }
        }
        compact()
        buffer.append(contentsOf: UnsafeBufferPointer(rebasing: rest))
    }

    private mutating func compact() {
        guard readOffset > 0 else { return }
        if readOffset == buffer.count {
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            readOffset = 0
        } else if readOffset >= Self.compactionThreshold && readOffset >= buffer.count - readOffset {
            // Moves at most as many bytes as were consumed since the last move: amortized O(1).
            buffer.removeSubrange(0..<readOffset)
            readOffset = 0
        }
    }

    // MARK: - State

    /// True when no partial request is buffered (nothing, or only complete empty lines).
    /// The server applies `--io-timeout` only when this is false: any byte of a line not
    /// yet ended, even a lone `\r`, starts the clock.
    public var isIdle: Bool {
        switch phase {
        case .closed: return true
        case .payload, .line, .awaitingAdmission: return false
        case .header: break
        }
        return buffer.withUnsafeBufferPointer { bytes in
            var index = readOffset
            let end = bytes.count
            while index < end {
                switch bytes[index] {
                case 0x0A:
                    index += 1
                case 0x0D:
                    if index + 1 == end || bytes[index + 1] != 0x0A { return false }
                    index += 2
                default:
                    return false
                }
            }
            return true
        }
    }

    /// The bytes the request whose header was just decoded will stage (its LEN, or the
    /// mailbox size for a netcat-form line), while it waits for `admitStaging()`; else nil.
    public var stagingAwaited: Int? {
        guard case let .awaitingAdmission(outcome) = phase else { return nil }
        if case let .payload(length, _) = outcome { return length }
        return mailboxSize
    }

    /// Lets the request waiting in `stagingAwaited` receive its data.
    public mutating func admitStaging() {
        guard case let .awaitingAdmission(outcome) = phase else {
            preconditionFailure("admitStaging() without a request awaiting admission")
        }
        phase = .header
        begin(outcome)
    }

    /// Received bytes held by the decoder and not yet handed out in a result.
    public var bufferedByteCount: Int {
        buffer.count - readOffset + payload.count
    }

    // MARK: - Output

    /// Next complete result, or nil when more bytes are needed. After a failure with
    /// `closesConnection == true` the caller closes; further calls return nil.
    public mutating func next() -> DecodeResult? {
        while true {
            switch phase {
            case .closed, .awaitingAdmission:
                return nil
            case .payload(let target):
                if payloadRemaining > 0 { return nil }
                phase = .header
                return finishPayload(target)
            case .line(let target):
                return nextLine(target)
            case .header:
                guard let outcome = nextHeader() else { return nil }
                switch outcome {
                case .result(let result):
                    if case .failure(let error) = result, error.closesConnection { close() }
                    return result
                case .payload(_, let target) where requiresStagingAdmission && target.keepsData:
                    phase = .awaitingAdmission(outcome)
                    return nil
                case .line(let target) where requiresStagingAdmission && target.buffersLine:
                    phase = .awaitingAdmission(outcome)
                    return nil
                case .payload, .line:
                    begin(outcome)
                }
            }
        }
    }

    /// Position of the first `\n` in `buffer[from..<to]`.
    private func findNewline(from: Int, to: Int) -> Int? {
        buffer.withUnsafeBufferPointer { bytes in
            var index = from
            while index < to {
                if bytes[index] == 0x0A { return index }
                index += 1
            }
            return nil
        }
    }

    /// Decodes the next header line; nil when it is not complete yet. Skips empty lines.
    private mutating func nextHeader() -> HeaderOutcome? {
        while true {
            let pending = buffer.count - readOffset
            let limit = min(pending, Self.maximumHeaderLength)
            guard let newline = findNewline(from: readOffset + scanned, to: readOffset + limit) else {
                if pending >= Self.maximumHeaderLength {
                    return .result(.failure(ProtocolError(
                        code: .syntax,
                        message: "header longer than \(Self.maximumHeaderLength) bytes",
                        closesConnection: true)))
                }
                scanned = limit
                return nil
            }
            let start = readOffset
            var end = newline
            if end > start && buffer[end - 1] == 0x0D { end -= 1 }
            readOffset = newline + 1
            scanned = 0
            if end == start { continue }  // empty line
            let outcome = buffer.withUnsafeBufferPointer { bytes in
                HeaderParser(
                    line: UnsafeBufferPointer(rebasing: bytes[start..<end]),
                    mailboxes: mailboxes, mailboxSize: mailboxSize
                ).parse()
            }
            return refusesUntilAuthenticated ? outcome.refusedUntilAuthenticated() : outcome
        }
    }

    /// Enters the data phase of a decoded header (`.payload` or `.line`).
    private mutating func begin(_ outcome: HeaderOutcome) {
        switch outcome {
        case .payload(let length, let target):
            startPayload(length: length, target: target)
        case .line(let target):
            phase = .line(target)
            scanned = 0
        case .result:
            preconditionFailure("a result has no data phase")
        }
    }

    private mutating func startPayload(length: Int, target: PayloadTarget) {
        payloadKept = target.keepsData
        payload = []
        let take = min(length, buffer.count - readOffset)
        if payloadKept {
            payload.reserveCapacity(length)
            payload.append(contentsOf: buffer[readOffset..<(readOffset + take)])
        }
        readOffset += take
        payloadRemaining = length - take
        phase = .payload(target)
    }

    private mutating func finishPayload(_ target: PayloadTarget) -> DecodeResult {
        var data: [UInt8] = []
        swap(&data, &payload)
        payloadKept = false
        switch target {
        case .write(let mailbox):
            return .request(.write(mailbox: mailbox, data: data))
        case .push(let mailbox, let waitMilliseconds):
            return .request(.push(mailbox: mailbox, data: data, waitMilliseconds: waitMilliseconds))
        case .drop(let error):
            return .failure(error)
        }
    }

    /// The data line of a netcat-form `w N`; nil when it is not complete yet.
    private mutating func nextLine(_ target: LineTarget) -> DecodeResult? {
        // Syntax is checked before size: after a bad N the line is skipped whatever its
        // length, and its bytes are dropped as they come.
        if case let .drop(error) = target, error.code == .syntax {
            guard let newline = findNewline(from: readOffset, to: buffer.count) else {
                readOffset = buffer.count
                return nil
            }
            readOffset = newline + 1
            scanned = 0
            phase = .header
            return .failure(error)
        }
        let pending = buffer.count - readOffset
        // A line of mailboxSize bytes may still be followed by "\r\n": never look further.
        let window = mailboxSize < Int.max - 2 ? mailboxSize + 2 : Int.max
        let limit = min(pending, window)
        guard let newline = findNewline(from: readOffset + scanned, to: readOffset + limit) else {
            if pending >= window { return lineTooLong() }
            scanned = limit
            return nil
        }
        let start = readOffset
        var end = newline
        if end > start && buffer[end - 1] == 0x0D { end -= 1 }
        if end - start > mailboxSize { return lineTooLong() }
        readOffset = newline + 1
        scanned = 0
        phase = .header
        let result: DecodeResult
        switch target {
        case .write(let mailbox):
            result = .request(.write(mailbox: mailbox, data: Array(buffer[start..<end])))
        case .drop(let error):
            result = .failure(error)
        }
        releaseExcessCapacity()
        return result
    }

    /// After a long line: keeps only the unconsumed bytes (at most what one receive
    /// added after the line), so a connection does not hold a mailbox-sized buffer
    /// once the line's staged data is released.
    private mutating func releaseExcessCapacity() {
        guard buffer.capacity > Self.retainedCapacity else { return }
        buffer = Array(buffer[readOffset...])
        readOffset = 0
    }

    private mutating func lineTooLong() -> DecodeResult {
        close()
        return .failure(ProtocolError(
            code: .size, message: "data line longer than the mailbox size \(mailboxSize)",
            closesConnection: true))
    }

    private mutating func close() {
        phase = .closed
        buffer = []
        readOffset = 0
        scanned = 0
        payload = []
        payloadRemaining = 0
    }
}

extension LineTarget {
    /// Whether the decoder holds the whole line before it acts: every target but a
    /// syntax error's, whose line is dropped as it arrives.
    fileprivate var buffersLine: Bool {
        if case let .drop(error) = self, error.code == .syntax { return false }
        return true
    }
}
