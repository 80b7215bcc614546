import Glibc

/// A connected, blocking TCP (or Unix-domain) socket with send/receive timeouts,
/// optionally carrying TLS (`startTLS`).
///
/// Contract:
/// - `connect` resolves `host` with getaddrinfo (IPv4 and IPv6, numeric service) and
///   tries each address in turn; the timeout bounds each connect attempt as well as
///   every later send and receive (0 or less: no timeout).
/// - `sendAll` writes every byte or throws; it never raises SIGPIPE (MSG_NOSIGNAL).
/// - `receive` returns at least one byte, or 0 at end of stream; it throws on error or
///   when no byte arrives within the receive timeout.
/// - Errors are `DIPCClientError.connection`, naming the call, the peer and strerror.
/// - Not thread-safe. The descriptor is closed by `close()` (idempotent) or deinit.
final class TCPStream {
    private(set) var fd: Int32
    /// "host:port" as given by the caller, for error messages.
    let peer: String
    /// The timeout applied to sends and receives, in seconds (0: none).
    let timeoutSeconds: Double
    /// Set by `startTLS`: every byte then goes through it.
    private var tls: ClientTLSSession?

    private init(fd: Int32, peer: String, timeoutSeconds: Double) {
        self.fd = fd
        self.peer = peer
        self.timeoutSeconds = timeoutSeconds
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    /// Connects to `host`:`port`, trying every address getaddrinfo returns.
    static func connect(host: String, port: Int, timeoutSeconds: Double) throws -> TCPStream {
        let peer = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        guard (1...65535).contains(port) else {
            throw DIPCClientError.connection("connect to \(peer): invalid port \(port) (must be 1-65535)")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>? = nil
        let rc = getaddrinfo(host, String(port), &hints, &list)
        if rc != 0 {
            let text = rc == EAI_SYSTEM ? errnoText(errno) : String(cString: gai_strerror(rc))
            throw DIPCClientError.connection("getaddrinfo(\(host)): \(text)")
        }
        defer { freeaddrinfo(list) }

        var lastError: DIPCClientError = .connection("connect to \(peer): no usable address")
        var entry = list
        while let ai = entry {
            entry = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue),
                            ai.pointee.ai_protocol)
            if fd < 0 {
                lastError = connectionError("socket for \(peer)", errno: errno)
                continue
            }
            let stream = TCPStream(fd: fd, peer: peer, timeoutSeconds: timeoutSeconds)
            do {
                try stream.setTimeout(SO_SNDTIMEO, seconds: timeoutSeconds)
                try stream.setTimeout(SO_RCVTIMEO, seconds: timeoutSeconds)
            } catch let error as DIPCClientError {
                lastError = error
                continue  // stream's deinit closes fd
            }
            var one: Int32 = 1
            do {
                try systemCall("setsockopt(TCP_NODELAY)") {
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                }
            } catch {
                lastError = connectionError("\(error.call) on \(peer)", errno: error.errno)
                continue  // stream's deinit closes fd
            }
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 {
                return stream
            }
            let code = errno
            if code == EINPROGRESS || code == EAGAIN {
                lastError = .connection("connect to \(peer): timed out after \(formatSeconds(timeoutSeconds)) s")
            } else {
                lastError = connectionError("connect to \(peer)", errno: code)
            }
        }
        throw lastError
    }

    /// Connects to the Unix-domain stream socket at `path` (`dipc --unix`).
    static func connect(unixPath path: String, timeoutSeconds: Double) throws -> TCPStream {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw DIPCClientError.connection("connect to \(path): not a usable Unix socket path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw connectionError("socket for \(path)", errno: errno) }
        let stream = TCPStream(fd: fd, peer: path, timeoutSeconds: timeoutSeconds)
        try stream.setTimeout(SO_SNDTIMEO, seconds: timeoutSeconds)
        try stream.setTimeout(SO_RCVTIMEO, seconds: timeoutSeconds)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 { throw connectionError("connect to \(path)", errno: errno) }
        return stream
    }

    /// Handshakes TLS with the server, verifying it as `host`; every later byte is encrypted.
    func startTLS(host: String, options: DIPCTLSOptions) throws {
        tls = try ClientTLSSession(fd: fd, host: host, peer: peer, options: options, timeoutSeconds: timeoutSeconds)
    }

    /// Sets SO_RCVTIMEO or SO_SNDTIMEO (0 or less: block without limit).
    func setTimeout(_ option: Int32, seconds: Double) throws {
        var tv = timeval()
        if seconds > 0 {
            let whole = seconds.rounded(.down)
            tv.tv_sec = Int(whole)
            tv.tv_usec = Int(((seconds - whole) * 1_000_000).rounded())
            if tv.tv_sec == 0 && tv.tv_usec == 0 { tv.tv_usec = 1 }
        }
        let name = option == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO"
        do {
            try systemCall("setsockopt(\(name))") { setsockopt(fd, SOL_SOCKET, option, &tv, socklen_t(MemoryLayout<timeval>.size)) }
        } catch {
            throw connectionError("\(error.call) on \(peer)", errno: error.errno)
        }
    }

    /// Sends every byte of `bytes`.
    func sendAll(_ bytes: [UInt8]) throws {
        guard isOpen else { throw DIPCClientError.connection("send to \(peer): connection is closed") }
        if let tls {
            try bytes.withUnsafeBytes { try tls.sendAll($0) }
            return
        }
        var sent = 0
        try bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                do {
                    sent += try systemCall("send") { Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL)) }
                } catch let error as SystemError where error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                    throw DIPCClientError.connection(
                        "send to \(peer): timed out after \(formatSeconds(timeoutSeconds)) s")
                } catch let error as SystemError {
                    throw connectionError("send to \(peer)", errno: error.errno)
                }
            }
        }
    }

    /// Receives up to `capacity` bytes into `buffer` (appending); returns the count, 0 at EOF.
    /// `receiveTimeout` is only used for the error message.
    func receive(into buffer: inout [UInt8], capacity: Int, receiveTimeout: Double) throws -> Int {
        guard isOpen else { throw DIPCClientError.connection("recv from \(peer): connection is closed") }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: capacity))
        if let tls {
            do {
                let n = try buffer.withUnsafeMutableBytes { raw in try tls.receive(into: raw.baseAddress! + start, capacity: capacity) }
                buffer.removeLast(capacity - n)
                return n
            } catch {
                buffer.removeLast(capacity)
                throw error
            }
        }
        let received = buffer.withUnsafeMutableBytes { raw in
            Result { () throws(SystemError) in try systemCall("recv") { Glibc.recv(fd, raw.baseAddress! + start, capacity, 0) } }
        }
        switch received {
        case let .success(n):
            buffer.removeLast(capacity - n)
            return n
        case let .failure(error):
            buffer.removeLast(capacity)
            if error.errno == EAGAIN || error.errno == EWOULDBLOCK {
                throw DIPCClientError.connection(
                    "recv from \(peer): timed out after \(formatSeconds(receiveTimeout)) s")
            }
            throw connectionError("recv from \(peer)", errno: error.errno)
        }
    }

    /// Receives whatever is already queued, without waiting; returns the count (0 when
    /// nothing is queued, at EOF, or on error).
    func receiveQueued(into buffer: inout [UInt8], capacity: Int) -> Int {
        guard isOpen else { return 0 }
        if let tls {
            // Only what is decrypted already, or a socket that is readable now.
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard tls.pending > 0 || poll(&pfd, 1, 0) == 1 else { return 0 }
            return (try? receive(into: &buffer, capacity: capacity, receiveTimeout: timeoutSeconds)) ?? 0
        }
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: capacity))
        // Nothing queued (EAGAIN) and a failed connection both read as "nothing": the
        // next blocking receive reports the connection's state.
        let got = buffer.withUnsafeMutableBytes { raw in
            (try? systemCall("recv") { Glibc.recv(fd, raw.baseAddress! + start, capacity, Int32(MSG_DONTWAIT)) }) ?? 0
        }
        buffer.removeLast(capacity - got)
        return got
    }

    /// Closes the socket; later calls fail with "connection is closed".
    func close() {
        if fd >= 0 {
            tls?.shutdown()
            tls = nil
            // Linux frees the descriptor even when close fails, and a retry could close
            // a descriptor another thread was just given: nothing to check or retry.
            _ = Glibc.close(fd)
            fd = -1
        }
    }
}

/// "30", "0.25": seconds for messages, without trailing zeros.
func formatSeconds(_ seconds: Double) -> String {
    if seconds == seconds.rounded() && abs(seconds) < 1e15 { return String(Int(seconds)) }
    return String(seconds)
}
