import DIPCTestSupport
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

private let ignoreSIGPIPEOnce: Void = { signal(SIGPIPE, SIG_IGN) }()

/// The suite writes to sockets and pipes whose peer may be gone: never die of SIGPIPE.
func ignoreSIGPIPE() { _ = ignoreSIGPIPEOnce }

private func loopback(_ port: Int, host: String = "127.0.0.1") -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port)).bigEndian
    addr.sin_addr = in_addr(s_addr: inet_addr(host))
    return addr
}

private func newSocket() -> Int32 {
    socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
}

/// Ports handed out by `freePort` in this test process (never handed out twice).
private let portsHandedOut = NSLock()
nonisolated(unsafe) private var handedOut = Set<Int>()

/// A port that was free a moment ago on 127.0.0.1, chosen at random below the kernel's
/// ephemeral range (32768-60999): the suite's many client connections take their local
/// ports from that range, and one of them holding a server's port would make a restart
/// on that port fail with EADDRINUSE.
func freePort() throws -> Int {
    for _ in 0..<1000 {
        let port = Int.random(in: 20000..<32768)
        let fresh = portsHandedOut.withLock { handedOut.insert(port).inserted }
        guard fresh else { continue }
        let fd = newSocket()
        guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
        defer { close(fd) }
        var addr = loopback(port)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc == 0 { return port }
    }
    throw E2EError("no free port found in 20000..<32768")
}

/// A listening socket that occupies a port (for "port in use").
final class PortBlocker {
    let fd: Int32
    let port: Int
    init() throws {
        let fd = newSocket()
        self.fd = fd
        var addr = loopback(0)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0, listen(fd, 4) == 0 else {
            close(fd)
            throw E2EError("bind/listen: errno \(errno)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        port = Int(UInt16(bigEndian: addr.sin_port))
    }
    deinit { close(fd) }
}

/// Whether something accepts TCP connections on 127.0.0.1:port.
func portAccepts(_ port: Int, host: String = "127.0.0.1") -> Bool {
    guard let c = try? Conn(port: port, host: host, timeout: 2) else { return false }
    c.close()
    return true
}

/// What a wait for the server to close the connection found.
enum CloseOutcome: Equatable, CustomStringConvertible {
    case closed
    case data([UInt8])
    case stillOpen

    var description: String {
        switch self {
        case .closed: return "closed"
        case .data(let d): return "unexpected data \(String(decoding: d, as: UTF8.self).debugDescription)"
        case .stillOpen: return "still open"
        }
    }
}

/// A raw TCP client speaking the wire protocol byte-exactly. Every read has a deadline.
final class Conn {
    private(set) var fd: Int32
    private var buffer: [UInt8] = []
    let port: Int
    var timeout: Double

    init(port: Int, host: String = "127.0.0.1", timeout: Double = E2E.replyTimeout) throws {
        ignoreSIGPIPE()
        self.port = port
        self.timeout = timeout
        fd = newSocket()
        guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))  // also bounds connect
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = loopback(port, host: host)
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            fd = -1
            throw E2EError("connect to \(host):\(port) failed: \(String(cString: strerror(e)))")
        }
    }

    /// Connects to the Unix-domain socket at `unixPath` (`dipc --unix`).
    init(unixPath: String, timeout: Double = E2E.replyTimeout) throws {
        ignoreSIGPIPE()
        port = 0
        self.timeout = timeout
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw E2EError("socket: errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = Array(unixPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: addr.sun_path) else { throw E2EError("path too long: \(unixPath)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: path) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            fd = -1
            throw E2EError("connect to \(unixPath) failed: \(String(cString: strerror(e)))")
        }
    }

    deinit { close() }

    func close() {
        if fd >= 0 {
            Glibc.close(fd)
            fd = -1
        }
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0).
    func abort() {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        close()
    }

    func send(_ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw E2EError("send to port \(port) failed: \(String(cString: strerror(errno)))")
            }
            off += n
        }
    }

    func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Sends one byte per `send` call (TCP_NODELAY, with a tiny pause so segments stay apart).
    func sendSplit(_ bytes: [UInt8]) throws {
        for b in bytes {
            try send([b])
            usleep(500)
        }
    }

    /// Receives more bytes into the buffer; false on EOF or reset. Throws at the deadline.
    private func fill(deadline: Double, what: @autoclosure () -> String) throws -> Bool {
        while true {
            let left = deadline - monotonicNow()
            if left <= 0 {
                throw E2EError(
                    "timed out after \(timeout) s waiting for \(what()) on port \(port); buffered: "
                        + String(decoding: buffer, as: UTF8.self).debugDescription)
            }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let r = Glibc.poll(&p, 1, Int32(min(left, 1) * 1000) + 1)
            if r < 0 && errno != EINTR { throw E2EError("poll: errno \(errno)") }
            if r <= 0 { continue }
            var tmp = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &tmp, tmp.count, 0)
            if n > 0 {
                buffer += tmp[0..<n]
                return true
            }
            if n == 0 { return false }
            if errno == EINTR || errno == EAGAIN { continue }
            if errno == ECONNRESET { return false }
            throw E2EError("recv: \(String(cString: strerror(errno)))")
        }
    }

    /// One reply line without its `\n`. Throws on EOF or at the deadline.
    func readLine() throws -> String {
        let deadline = monotonicNow() + timeout
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                return line
            }
            if !(try fill(deadline: deadline, what: "a reply line")) {
                throw E2EError(
                    "connection closed by the server before a full reply line; got "
                        + String(decoding: buffer, as: UTF8.self).debugDescription)
            }
        }
    }

    /// Exactly `count` bytes.
    func readBytes(_ count: Int) throws -> [UInt8] {
        let deadline = monotonicNow() + timeout
        while buffer.count < count {
            if !(try fill(deadline: deadline, what: "\(count) data bytes")) {
                throw E2EError("connection closed after \(buffer.count) of \(count) data bytes")
            }
        }
        let out = Array(buffer[..<count])
        buffer.removeSubrange(..<count)
        return out
    }

    /// Waits up to `timeout` for the server to close the connection.
    func waitForClose(timeout: Double = 5) -> CloseOutcome {
        if !buffer.isEmpty { return .data(buffer) }
        let deadline = monotonicNow() + timeout
        do {
            let more = try fill(deadline: deadline, what: "close")
            return more ? .data(buffer) : .closed
        } catch {
            return .stillOpen
        }
    }

    /// True when nothing at all (no byte, no EOF) arrives for `seconds`.
    func staysSilent(for seconds: Double) -> Bool {
        if !buffer.isEmpty { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = monotonicNow() + seconds
        while true {
            let left = deadline - monotonicNow()
            if left <= 0 { return true }
            let r = Glibc.poll(&p, 1, Int32(left * 1000) + 1)
            if r > 0 { return false }
        }
    }

    // MARK: requests

    /// Sends `line + "\n"` and returns the reply line.
    func request(_ line: String) throws -> String {
        try send(line + "\n")
        return try readLine()
    }

    /// `r N`: the data and version; throws with the reply when it is not `ok LEN VERSION`.
    func read(_ mailbox: Int) throws -> (data: [UInt8], version: UInt64) {
        try send("r \(mailbox)\n")
        return try readDataReply(request: "r \(mailbox)")
    }

    /// Reads an `ok LEN VERSION` reply and its data.
    func readDataReply(request: String) throws -> (data: [UInt8], version: UInt64) {
        let line = try readLine()
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count == 3, f[0] == "ok", let len = Int(f[1]), let ver = UInt64(f[2]) else {
            throw E2EError("request \(request.debugDescription): expected `ok LEN VERSION`, got \(line.debugDescription)")
        }
        return (try readBytes(len), ver)
    }

    /// `w N LEN` + data: the new version; throws with the reply when it is not `ok VERSION`.
    @discardableResult
    func write(_ mailbox: Int, _ data: [UInt8]) throws -> UInt64 {
        try send(Array("w \(mailbox) \(data.count)\n".utf8) + data)
        let line = try readLine()
        let f = line.split(separator: " ", omittingEmptySubsequences: false)
        guard f.count == 2, f[0] == "ok", let ver = UInt64(f[1]) else {
            throw E2EError("request `w \(mailbox) \(data.count)` + data: expected `ok VERSION`, got \(line.debugDescription)")
        }
        return ver
    }

    @discardableResult
    func write(_ mailbox: Int, _ text: String) throws -> UInt64 { try write(mailbox, Array(text.utf8)) }
}

/// `KEY=VALUE` fields of an `ok ...` reply (after the given number of leading words).
func keyValues(_ line: String) -> [String: String] {
    var out: [String: String] = [:]
    for word in line.split(separator: " ") {
        if let eq = word.firstIndex(of: "=") {
            out[String(word[..<eq])] = String(word[word.index(after: eq)...])
        }
    }
    return out
}

/// Random bytes.
func randomBytes(_ count: Int) -> [UInt8] {
    var g = SplitMix64()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
}
