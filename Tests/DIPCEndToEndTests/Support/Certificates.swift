import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension Requirement {
    static let openssl = program("/usr/bin/openssl", package: "openssl")
}

/// Certificates made at test time with the `openssl` CLI in a scope's directory (EC
/// P-256, valid two days): a CA; a server certificate it signs for IP:127.0.0.1 and
/// DNS:localhost; a client certificate it signs; and a second, unrelated CA with a
/// client certificate of its own (foreign to the first).
struct TestCertificates {
    let dir: String
    var ca: String { dir + "/ca.pem" }
    var serverCert: String { dir + "/server.pem" }
    var serverKey: String { dir + "/server.key" }
    var clientCert: String { dir + "/client.pem" }
    var clientKey: String { dir + "/client.key" }
    var otherCA: String { dir + "/other-ca.pem" }
    var foreignClientCert: String { dir + "/foreign.pem" }
    var foreignClientKey: String { dir + "/foreign.key" }

    /// The server options for TLS (and, with `mutual`, a required client certificate).
    func serverOptions(mutual: Bool = false) -> [String] {
        ["--tls-cert", serverCert, "--tls-key", serverKey] + (mutual ? ["--tls-ca", ca] : [])
    }

    /// Makes every file in `scope`'s directory.
    init(in scope: Scope) throws {
        dir = scope.dir + "/tls"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try makeCA("ca", "dipc test CA")
        try makeCA("other-ca", "unrelated test CA")
        try makeSigned("server", cn: "127.0.0.1", by: "ca", extensions: "subjectAltName=IP:127.0.0.1,DNS:localhost")
        try makeSigned("client", cn: "dipc test client", by: "ca", extensions: "extendedKeyUsage=clientAuth")
        try makeSigned("foreign", cn: "foreign client", by: "other-ca", extensions: "extendedKeyUsage=clientAuth")
    }

    private func openssl(_ args: [String]) throws {
        let r = try runProcess("/usr/bin/openssl", args, env: ProcessInfo.processInfo.environment, timeout: 30)
        guard r.status == 0 else { throw E2EError("openssl failed: \(r)") }
    }

    private func makeCA(_ name: String, _ cn: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).pem", "-days", "2", "-subj", "/CN=\(cn)"])
    }

    private func makeSigned(_ name: String, cn: String, by ca: String, extensions: String) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", "\(dir)/\(name).key", "-out", "\(dir)/\(name).csr", "-subj", "/CN=\(cn)"])
        let extFile = "\(dir)/\(name).ext"
        try (extensions + "\n").write(toFile: extFile, atomically: false, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "\(dir)/\(name).csr", "-CA", "\(dir)/\(ca).pem", "-CAkey", "\(dir)/\(ca).key",
                     "-CAcreateserial", "-out", "\(dir)/\(name).pem", "-days", "2", "-extfile", extFile])
    }

    /// Runs `openssl s_client` against 127.0.0.1:`port` with `input` on stdin; it stays
    /// connected after its stdin ends (`-quiet`) until the server closes.
    func sClient(port: Int, input: String, extra: [String] = []) throws -> ProcessResult {
        try runProcess("/usr/bin/openssl",
                       ["s_client", "-quiet", "-verify_return_error", "-CAfile", ca, "-verify_ip", "127.0.0.1",
                        "-connect", "127.0.0.1:\(port)"] + extra,
                       env: ProcessInfo.processInfo.environment, stdin: Array(input.utf8), timeout: E2E.clientTimeout)
    }
}

/// A TCP relay for one connection: the test's client connects to `port`, the relay to
/// the server's port, and every byte in either direction is recorded.
final class RecordingRelay: @unchecked Sendable {
    let port: Int
    private let listenFD: Int32
    private let lock = NSLock()
    private var recorded: [UInt8] = []
    private var finished = false

    init(to serverPort: Int) throws {
        port = try freePort()
        listenFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listenFD, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port)).bigEndian
        addr.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listenFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0, listen(listenFD, 16) == 0 else {
            close(listenFD)
            throw E2EError("relay bind/listen: errno \(errno)")
        }
        let thread = Thread { [self] in serve(serverPort) }
        thread.start()
    }

    /// Every byte relayed so far, both directions.
    var bytes: [UInt8] { lock.withLock { recorded } }

    /// Stops relaying (closes the listener; relayed connections end when their peers close).
    func stop() {
        lock.withLock { finished = true }
        shutdown(listenFD, Int32(SHUT_RDWR))
    }

    deinit { close(listenFD) }

    private func serve(_ serverPort: Int) {
        while !lock.withLock({ finished }) {
            let client = accept(listenFD, nil, nil)
            if client < 0 { return }
            guard let upstream = try? Conn(port: serverPort) else {
                close(client)
                continue
            }
            pump(client, upstream.fd)
            close(client)
            upstream.close()
        }
    }

    /// Copies both ways until either side closes, for at most the reply timeout.
    private func pump(_ a: Int32, _ b: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicNow() + E2E.clientTimeout
        while monotonicNow() < deadline {
            var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 2, 100) >= 0 else { return }
            for (from, to) in [(0, b), (1, a)] where fds[from].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(fds[from].fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                lock.withLock { recorded.append(contentsOf: buffer[0..<n]) }
                var off = 0
                while off < n {
                    let sent = buffer.withUnsafeBytes { send(to, $0.baseAddress! + off, n - off, Int32(MSG_NOSIGNAL)) }
                    if sent <= 0 { return }
                    off += sent
                }
            }
        }
    }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs in these bytes.
    func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        for start in 0...(count - needle.count) where self[start] == needle[0] {
            if Array(self[start..<(start + needle.count)]) == needle { return true }
        }
        return false
    }
}
