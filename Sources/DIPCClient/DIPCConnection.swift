import Glibc

/// One TCP connection to a DIPC server, speaking the wire protocol (spec section 2).
///
/// Contract:
/// - Blocking: each call sends one request and waits for its whole reply. Every send
///   and receive is bounded by `timeoutSeconds` (0 or less: no limit); calls that ask
///   the server to wait (`watch`, `push`, `consume` with `waitMilliseconds > 0`) extend
///   the receive limit by that wait.
/// - Replies are read through a receive buffer, line by line; data is exactly LEN bytes.
/// - `err CODE MESSAGE` throws `DIPCClientError.server`; for `size`, `busy`, `timeout`
///   and `shutdown` (after which the server closes) the connection is closed here too.
/// - A `.connection` or `.protocolViolation` error closes the connection: later calls
///   throw `.connection("... connection is closed")`.
/// - Numbers are sent as given: a negative mailbox or wait is answered `err syntax`.
/// - Not thread-safe: use one connection from one thread at a time.
public final class DIPCConnection {
    private let stream: TCPStream
    private var buffer = ReceiveBuffer()
    /// Longest reply line accepted (the `i` and `s` replies are the long ones).
    private static let maxLineLength = 64 * 1024
    private static let chunkSize = 64 * 1024

    /// Connects to `host`:`port` (a name or an IPv4/IPv6 address, resolved with getaddrinfo).
    /// With `tls`, speaks TLS, verifying the server's certificate and its name or IP.
    public init(host: String = "127.0.0.1", port: Int, timeoutSeconds: Double = 30, tls: DIPCTLSOptions? = nil) throws {
        stream = try TCPStream.connect(host: host, port: port, timeoutSeconds: timeoutSeconds)
        currentReceiveTimeout = timeoutSeconds
        if let tls { try stream.startTLS(host: host, options: tls) }
    }

    /// Connects to the Unix-domain socket at `unixPath` (a server started with `--unix`).
    public init(unixPath: String, timeoutSeconds: Double = 30) throws {
        stream = try TCPStream.connect(unixPath: unixPath, timeoutSeconds: timeoutSeconds)
        currentReceiveTimeout = timeoutSeconds
    }

    deinit { stream.close() }

    /// "host:port" of the server, as given to `init`.
    public var peer: String { stream.peer }

    /// True until `close()`, `quit()` or an error that closes the connection.
    public var isOpen: Bool { stream.isOpen }

    // MARK: Requests

    /// `r N`: the mailbox's newest message and its version.
    public func read(_ mailbox: Int) throws -> Message {
        let request = "r \(mailbox)"
        return try exchange(request) {
            try sendRaw(Array("\(request)\n".utf8))
            return try readMessage(request: request)
        }
    }

    /// `r N V W`: waits until the mailbox's version is above `version` or
    /// `waitMilliseconds` have passed (whichever is first), then reads as `read`.
    public func watch(_ mailbox: Int, after version: UInt64, waitMilliseconds: Int) throws -> Message {
        let request = "r \(mailbox) \(version) \(waitMilliseconds)"
        return try exchange(request, waitMilliseconds: waitMilliseconds) {
            try sendRaw(Array("\(request)\n".utf8))
            return try readMessage(request: request)
        }
    }

    /// `w N LEN` then `data`: replaces the mailbox's content; returns the new version.
    @discardableResult
    public func write(_ mailbox: Int, _ data: [UInt8]) throws -> UInt64 {
        let request = "w \(mailbox) \(data.count)"
        return try exchange(request) {
            try sendRequest(request, data: data)
            return try ReplyParsing.version(try readLine(), request: request)
        }
    }

    /// `p N LEN [WAIT_MS]` then `data`: appends a message to the mailbox's queue,
    /// waiting up to `waitMilliseconds` for room; returns the new version.
    /// Throws `.server(code: "full", ...)` when there was no room in time.
    @discardableResult
    public func push(_ mailbox: Int, _ data: [UInt8], waitMilliseconds: Int = 0) throws -> UInt64 {
        let request = "p \(mailbox) \(data.count)" + (waitMilliseconds == 0 ? "" : " \(waitMilliseconds)")
        return try exchange(request, waitMilliseconds: waitMilliseconds) {
            try sendRequest(request, data: data)
            return try ReplyParsing.version(try readLine(), request: request)
        }
    }

    /// `c N [WAIT_MS]`: removes and returns the oldest message (version after the take),
    /// waiting up to `waitMilliseconds` for one. Throws `.server(code: "empty", ...)`
    /// when there was none in time.
    public func consume(_ mailbox: Int, waitMilliseconds: Int = 0) throws -> Message {
        let request = "c \(mailbox)" + (waitMilliseconds == 0 ? "" : " \(waitMilliseconds)")
        return try exchange(request, waitMilliseconds: waitMilliseconds) {
            try sendRaw(Array("\(request)\n".utf8))
            return try readMessage(request: request)
        }
    }

    /// `i`: the server's description (`backend`, `name`, `mailboxes`, ...).
    public func info() throws -> [String: String] {
        Dictionary(try infoPairs(), uniquingKeysWith: { _, last in last })
    }

    /// `i`, with the pairs in the order the server sent them.
    public func infoPairs() throws -> [(key: String, value: String)] {
        try exchange("i") {
            try sendRaw(Array("i\n".utf8))
            return try ReplyParsing.pairs(try readLine(), request: "i", banner: "dipc/")
        }
    }

    /// `s`: the server's counters since start (`connections`, `reads`, ...).
    public func stats() throws -> [String: String] {
        Dictionary(try statsPairs(), uniquingKeysWith: { _, last in last })
    }

    /// `s`, with the pairs in the order the server sent them.
    public func statsPairs() throws -> [(key: String, value: String)] {
        try exchange("s") {
            try sendRaw(Array("s\n".utf8))
            return try ReplyParsing.pairs(try readLine(), request: "s", banner: nil)
        }
    }

    /// `a TOKEN`: presents the server's `--auth-file` token (see `DIPCAuthFile`).
    /// Throws `.server(code: "auth", ...)` when it is refused (a wrong token; or a
    /// server that requires none), and closes the connection then. Error messages
    /// never quote the token.
    public func authenticate(token: String) throws {
        do {
            try exchange("a TOKEN") {
                try sendRaw(Array("a \(token)\n".utf8))
                try ReplyParsing.okay(try readLine(), request: "a TOKEN")
            }
        } catch let error as DIPCClientError {
            if case .server = error { close() }
            throw error
        }
    }

    /// `q`: expects `bye`, then closes the connection (also when the reply is not `bye`).
    public func quit() throws {
        defer { close() }
        try exchange("q") {
            try sendRaw(Array("q\n".utf8))
            try ReplyParsing.bye(try readLine())
        }
    }

    /// Closes the connection. Idempotent.
    public func close() {
        stream.close()
        buffer.reset()
    }

    // MARK: Raw access (for the shell and tests)

    /// Sends `bytes` as they are. When the server has already closed the connection,
    /// an `err` line it sent before closing (e.g. `err busy`) is thrown as `.server`.
    /// Like every call, a `.connection` error closes the connection.
    public func sendRaw(_ bytes: [UInt8]) throws {
        do {
            try stream.sendAll(bytes)
        } catch let error as DIPCClientError {
            let pending = pendingErrorLine()
            close()
            if let pending { try ReplyParsing.throwIfError(pending) }
            throw error
        }
    }

    /// The next reply line, without its `\n` (and a `\r` before it), returned as is,
    /// even when it is `err ...`. Throws `.connection` if the connection closes first,
    /// `.protocolViolation` for a line longer than 64 KiB; both close the connection.
    public func readLine() throws -> String {
        do {
            while true {
                if let line = buffer.takeLine() {
                    return String(decoding: line, as: UTF8.self)
                }
                if buffer.pendingLineLength > Self.maxLineLength {
                    throw DIPCClientError.protocolViolation("reply line longer than \(Self.maxLineLength) bytes")
                }
                try fillBuffer(expecting: buffer.isEmpty ? "a reply" : "the rest of a reply line")
            }
        } catch {
            close()
            throw error
        }
    }

    /// Exactly `n` bytes (`n` >= 0), buffered ones first. Throws `.connection` if the
    /// connection closes first, which closes the connection.
    public func readExactly(_ n: Int) throws -> [UInt8] {
        precondition(n >= 0, "readExactly: negative count")
        var result = buffer.take(upTo: n)
        if result.count < n { result.reserveCapacity(min(n, 16 << 20)) }
        do {
            while result.count < n {
                let want = min(n - result.count, 1 << 20)
                let got = try stream.receive(into: &result, capacity: want, receiveTimeout: currentReceiveTimeout)
                if got == 0 {
                    throw DIPCClientError.connection(
                        "recv from \(stream.peer): connection closed by the server in the middle of a reply "
                            + "(\(result.count) of \(n) data bytes received)")
                }
            }
        } catch {
            close()
            throw error
        }
        return result
    }

    // MARK: Internals

    /// The receive timeout in force, for messages.
    private var currentReceiveTimeout: Double

    private func readMessage(request: String) throws -> Message {
        let header = try ReplyParsing.dataHeader(try readLine(), request: request)
        return Message(data: try readExactly(header.length), version: header.version)
    }

    /// Sends a header line and its data; small ones in one send.
    private func sendRequest(_ header: String, data: [UInt8]) throws {
        var bytes = Array("\(header)\n".utf8)
        if data.count <= 64 * 1024 {
            bytes.append(contentsOf: data)
            try sendRaw(bytes)
        } else {
            try sendRaw(bytes)
            try sendRaw(data)
        }
    }

    private func fillBuffer(expecting what: String) throws {
        let got = try buffer.fill { storage in
            try stream.receive(into: &storage, capacity: Self.chunkSize, receiveTimeout: currentReceiveTimeout)
        }
        if got == 0 {
            let partial = buffer.isEmpty ? "" : " in the middle of a reply"
            throw DIPCClientError.connection(
                "recv from \(stream.peer): connection closed by the server\(partial) (while waiting for \(what))")
        }
    }

    /// An `err` line already queued on the socket (read without waiting), if any.
    private func pendingErrorLine() -> String? {
        _ = buffer.fill { storage in stream.receiveQueued(into: &storage, capacity: Self.chunkSize) }
        guard let line = buffer.takeLine() else { return nil }
        let text = String(decoding: line, as: UTF8.self)
        return text.hasPrefix("err") ? text : nil
    }

    /// Runs one request/reply exchange: checks the connection is open, extends the
    /// receive timeout by `waitMilliseconds`, and closes the connection on errors that
    /// leave the byte stream unusable.
    private func exchange<T>(_ request: String, waitMilliseconds: Int = 0, _ body: () throws -> T) throws -> T {
        guard stream.isOpen else {
            throw DIPCClientError.connection("'\(request)' to \(stream.peer): connection is closed")
        }
        let extended = stream.timeoutSeconds > 0 && waitMilliseconds > 0
        if extended {
            currentReceiveTimeout = stream.timeoutSeconds + Double(waitMilliseconds) / 1000
            try stream.setTimeout(SO_RCVTIMEO, seconds: currentReceiveTimeout)
        }
        defer {
            if extended && stream.isOpen {
                currentReceiveTimeout = stream.timeoutSeconds
                try? stream.setTimeout(SO_RCVTIMEO, seconds: stream.timeoutSeconds)
            }
        }
        do {
            return try body()
        } catch let error as DIPCClientError {
            switch error {
            case .server(let code, _):
                if ["size", "busy", "timeout", "shutdown"].contains(code) { close() }
            case .connection, .protocolViolation:
                close()
            }
            throw error
        }
    }
}
