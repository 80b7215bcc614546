@preconcurrency import Glibc

/// A minimal blocking TCP client with a receive buffer, used for dipc, memcached, Redis
/// and the echo floor alike so that the comparison measures the servers, not several
/// client libraries; also over a Unix-domain socket (`init(unixPath:)`) and over TLS
/// (`startTLS`). Nothing on its request path allocates.
final class RawConnection {
    private var fd: Int32
    private let capacity = 1 << 17
    private let buffer: UnsafeMutableRawPointer
    private var start = 0
    private var end = 0
    /// Set by `startTLS`: every byte then goes through it.
    private var tls: BenchTLSSession?
    /// Over TLS, a header and its data are sent as one record from here.
    private var staging: UnsafeMutableRawBufferPointer?

    init(port: Int) throws {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        // Every stored property is set from here on: a throw runs deinit, which closes and frees.
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            throw BenchError("connect to 127.0.0.1:\(port): \(message)")
        }
    }

    /// Connects to the Unix-domain stream socket at `unixPath` (`dipc --unix`).
    init(unixPath: String) throws {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(unixPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else { throw BenchError("socket path too long: \(unixPath)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw BenchError("connect to \(unixPath): \(String(cString: strerror(errno)))") }
    }

    /// Handshakes TLS, verifying the server against `caFile` as 127.0.0.1.
    func startTLS(caFile: String) throws {
        tls = try BenchTLSSession(fd: fd, caFile: caFile)
        staging = .allocate(byteCount: capacity, alignment: 16)
    }

    /// The TLS version and cipher in use; nil without TLS.
    var tlsDescription: String? { tls?.description }

    func close() {
        tls?.shutdown()
        tls = nil
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    deinit {
        close()
        buffer.deallocate()
        staging?.deallocate()
    }

    func send(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try send($0) }
    }

    func send(_ bytes: UnsafeRawBufferPointer) throws {
        if let tls { return try tls.send(bytes) }
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n < 0 {
                if errno == EINTR { continue }
                throw BenchError("send: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    /// Sends `header` then `data` with one `writev` (then plain sends for any remainder).
    func send(_ header: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer) throws {
        if let tls, let staging {
            guard header.count + data.count <= staging.count else {
                try tls.send(header)
                return try tls.send(data)
            }
            staging.baseAddress!.copyMemory(from: header.baseAddress!, byteCount: header.count)
            if !data.isEmpty { (staging.baseAddress! + header.count).copyMemory(from: data.baseAddress!, byteCount: data.count) }
            return try tls.send(UnsafeRawBufferPointer(rebasing: staging[0..<(header.count + data.count)]))
        }
        var vectors = (iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
                       iovec(iov_base: UnsafeMutableRawPointer(mutating: data.baseAddress), iov_len: data.count))
        let n = withUnsafeMutablePointer(to: &vectors) {
            $0.withMemoryRebound(to: iovec.self, capacity: 2) { writev(fd, $0, 2) }
        }
        if n < 0 && errno != EINTR { throw BenchError("writev: \(String(cString: strerror(errno)))") }
        let sent = max(n, 0)
        if sent < header.count {
            try send(UnsafeRawBufferPointer(rebasing: header[sent...]))
            try send(data)
        } else if sent - header.count < data.count {
            try send(UnsafeRawBufferPointer(rebasing: data[(sent - header.count)...]))
        }
    }

    private func fill() throws {
        if start == end {
            start = 0
            end = 0
        } else if end == capacity {
            if start == 0 { throw BenchError("reply line longer than \(capacity) bytes") }
            buffer.copyMemory(from: buffer + start, byteCount: end - start)
            end -= start
            start = 0
        }
        if let tls {
            end += try tls.receive(into: buffer + end, capacity: capacity - end)
            return
        }
        while true {
            let n = recv(fd, buffer + end, capacity - end, 0)
            if n > 0 {
                end += n
                return
            }
            if n < 0 && errno == EINTR { continue }
            throw BenchError(n == 0 ? "the server closed the connection" : "recv: \(String(cString: strerror(errno)))")
        }
    }

    /// Hands the next line, without its `\n` (and a `\r` before it), to `parse`; the
    /// bytes are valid only inside `parse`.
    func readLine<T>(_ parse: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        var scanned = start
        while true {
            if let newline = memchr(buffer + scanned, 0x0A, end - scanned) {
                let newlineIndex = buffer.distance(to: newline)
                var lineEnd = newlineIndex
                if lineEnd > start, buffer.load(fromByteOffset: lineEnd - 1, as: UInt8.self) == 0x0D { lineEnd -= 1 }
                let line = UnsafeRawBufferPointer(start: buffer + start, count: lineEnd - start)
                start = newlineIndex + 1
                return try parse(line)
            }
            let consumed = end - start
            try fill()
            scanned = start + consumed
        }
    }

    /// The next line as a string (for messages and setup, not the measured path).
    func readLine() throws -> String {
        try readLine { String(decoding: $0, as: UTF8.self) }
    }

    /// Reads exactly `count` bytes into `destination` (at least `count` bytes), or
    /// discards them when `destination` is nil.
    func read(_ count: Int, into destination: UnsafeMutableRawPointer?) throws {
        var left = count
        var offset = 0
        while left > 0 {
            if start == end { try fill() }
            let n = min(left, end - start)
            destination?.advanced(by: offset).copyMemory(from: buffer + start, byteCount: n)
            start += n
            offset += n
            left -= n
        }
    }

    /// Reads and discards exactly `count` bytes.
    func skip(_ count: Int) throws { try read(count, into: nil) }
}

/// Byte-level parsing of reply lines, without strings.
enum ReplyLine {
    /// The space-separated field `index` of `line`, or nil.
    static func field(_ line: UnsafeRawBufferPointer, _ index: Int) -> UnsafeRawBufferPointer? {
        var current = 0
        var fieldStart = 0
        for i in 0...line.count {
            if i == line.count || line[i] == 0x20 {
                if current == index { return UnsafeRawBufferPointer(rebasing: line[fieldStart..<i]) }
                current += 1
                fieldStart = i + 1
            }
        }
        return nil
    }

    /// A non-negative decimal number, or nil.
    static func number(_ bytes: UnsafeRawBufferPointer?) -> Int? {
        guard let bytes, !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int(byte - 0x30)
        }
        return value
    }

    static func equals(_ bytes: UnsafeRawBufferPointer?, _ text: StaticString) -> Bool {
        guard let bytes, bytes.count == text.utf8CodeUnitCount else { return false }
        return bytes.isEmpty || memcmp(bytes.baseAddress!, text.utf8Start, bytes.count) == 0
    }
}
