import Glibc

/// A scripted stand-in for a dipc server: a loopback listener on an ephemeral port,
/// served by one background thread that accepts one connection and plays `script`.
/// `finish()` joins the thread and returns what went differently from the script.
final class FakeServer: @unchecked Sendable {
    enum Step: Sendable {
        /// Reads exactly these bytes from the client (fails the script if they differ).
        case expect(String)
        case expectBytes([UInt8])
        /// Sends these bytes in one send.
        case send(String)
        case sendBytes([UInt8])
        /// Sleeps, so that the next send arrives as a separate segment.
        case pause(milliseconds: Int)
        /// Closes the client's connection now.
        case close
        /// Reads until the client closes its end.
        case expectEOF
    }

    let port: Int
    private let listener: Int32
    private let script: [Step]
    private var thread = pthread_t()
    // Written by the server thread only; read after join.
    private var failures: [String] = []

    /// Starts listening on `address` (127.0.0.1 or ::1), port 0, and the serving thread.
    init(_ script: [Step], ipv6: Bool = false) throws {
        self.script = script
        (listener, port) = try Self.listen(ipv6: ipv6)
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, fakeServerThreadMain, context)
        guard rc == 0 else {
            Unmanaged<FakeServer>.fromOpaque(context).release()
            Glibc.close(listener)
            throw FakeServerError("pthread_create: \(rc)")
        }
    }

    /// Waits for the script to end; returns its failures (empty when it went as written).
    func finish() -> [String] {
        pthread_join(thread, nil)
        return failures
    }

    fileprivate func serve() {
        defer { Glibc.close(listener) }
        let client = accept(listener, nil, nil)
        guard client >= 0 else {
            failures.append("accept: \(String(cString: strerror(errno)))")
            return
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var open = true
        defer { if open { Glibc.close(client) } }
        for step in script {
            switch step {
            case .expect(let text):
                guard expect(Array(text.utf8), on: client) else { return }
            case .expectBytes(let bytes):
                guard expect(bytes, on: client) else { return }
            case .send(let text):
                sendAll(Array(text.utf8), on: client)
            case .sendBytes(let bytes):
                sendAll(bytes, on: client)
            case .pause(let ms):
                usleep(UInt32(ms * 1000))
            case .close:
                Glibc.close(client)
                open = false
                return
            case .expectEOF:
                var scratch = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n = scratch.withUnsafeMutableBytes { recv(client, $0.baseAddress!, $0.count, 0) }
                    if n == 0 { break }
                    if n < 0 {
                        failures.append("expected EOF: \(String(cString: strerror(errno)))")
                        return
                    }
                }
            }
        }
    }

    private func expect(_ wanted: [UInt8], on fd: Int32) -> Bool {
        var got: [UInt8] = []
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while got.count < wanted.count {
            let want = min(scratch.count, wanted.count - got.count)
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, want, 0) }
            if n <= 0 {
                let why = n == 0 ? "EOF" : String(cString: strerror(errno))
                failures.append("expected \(describe(wanted)), got \(describe(got)) then \(why)")
                return false
            }
            got += scratch[0..<n]
        }
        if got != wanted {
            failures.append("expected \(describe(wanted)), got \(describe(got))")
            return false
        }
        return true
    }

    private func sendAll(_ bytes: [UInt8], on fd: Int32) {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + done, $0.count - done, Int32(MSG_NOSIGNAL)) }
            if n <= 0 {
                failures.append("send: \(String(cString: strerror(errno)))")
                return
            }
            done += n
        }
    }

    private func describe(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(80), as: UTF8.self)
        return "\"\(text.replacingNewlines())\"\(bytes.count > 80 ? "... (\(bytes.count) bytes)" : "")"
    }

    /// A listening socket on the loopback address, port 0; returns it and its port.
    private static func listen(ipv6: Bool) throws -> (Int32, Int) {
        let family = ipv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FakeServerError("socket: \(String(cString: strerror(errno)))") }
        var tv = timeval(tv_sec: 10, tv_usec: 0)  // accept gives up after 10 s
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let port: Int
        do {
            try bindLoopback(fd, ipv6: ipv6)
            guard Glibc.listen(fd, 8) == 0 else { throw FakeServerError("listen: \(String(cString: strerror(errno)))") }
            port = try localPort(fd)
        } catch {
            Glibc.close(fd)
            throw error
        }
        return (fd, port)
    }

    /// Binds `fd` to 127.0.0.1:0 or [::1]:0.
    static func bindLoopback(_ fd: Int32, ipv6: Bool) throws {
        let rc: Int32
        if ipv6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_addr = in6addr_loopback
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard rc == 0 else { throw FakeServerError("bind: \(String(cString: strerror(errno)))") }
    }

    /// The port `fd` is bound to.
    static func localPort(_ fd: Int32) throws -> Int {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw FakeServerError("getsockname: \(String(cString: strerror(errno)))") }
        let isIPv6 = storage.ss_family == sa_family_t(AF_INET6)
        return withUnsafePointer(to: &storage) { pointer -> Int in
            if isIPv6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// True when an IPv6 loopback socket can be bound here.
    static let ipv6LoopbackAvailable: Bool = {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        return (try? bindLoopback(fd, ipv6: true)) != nil
    }()
}

/// The thread entry point: a global function, so that no actor isolation is inferred.
private func fakeServerThreadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let server = Unmanaged<FakeServer>.fromOpaque(context!).takeRetainedValue()
    server.serve()
    return nil
}

/// A bound but never listening loopback port: connecting to it is refused.
/// Keep the returned descriptor open while connecting; close it afterwards.
func refusingPort() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw FakeServerError("socket: \(String(cString: strerror(errno)))") }
    try FakeServer.bindLoopback(fd, ipv6: false)
    return (fd, try FakeServer.localPort(fd))
}

struct FakeServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        var out = ""
        for c in self { out += c == "\n" ? "\\n" : c == "\r" ? "\\r" : String(c) }
        return out
    }
}
