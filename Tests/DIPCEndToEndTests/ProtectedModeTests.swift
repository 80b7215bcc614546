import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Protected mode (SPEC §1, §3 Access): beyond loopback only with authentication or
/// `--insecure`.
@Suite("protected mode")
struct ProtectedModeTests {
    @Test("--bind 0.0.0.0 without authentication refuses to start with SPEC's message", arguments: ["0.0.0.0", "::"])
    func refused(address: String) throws {
        try withScope { scope in
            let port = try freePort()
            let r = try scope.dipc(Scope.arguments(
                backend: E2E.builtBackends[0], name: scope.name, options: ["--bind", address],
                mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name])
            #expect(r.err == "dipc: refusing to serve \(address) without authentication: give --auth-file or --tls-ca, or --insecure\n", "\(r)")
        }
    }

    @Test("--bind 0.0.0.0 starts with --insecure, and with --auth-file", arguments: [false, true])
    func allowed(withToken: Bool) throws {
        try withScope { scope in
            var options = ["--bind", "0.0.0.0"]
            if withToken {
                options += ["--auth-file", try scope.secretFile("token", TokenAuthenticationTests.token)]
            } else {
                options.append("--insecure")
            }
            let server = try scope.start(E2E.builtBackends[0], options: options)
            let c = try server.connect()
            if withToken { #expect(try c.request("a \(TokenAuthenticationTests.token)") == "ok") }
            #expect(try c.request("r 0") == "ok 0 0")
        }
    }

    @Test("loopback addresses need nothing: 127.0.0.3, localhost, ::1", arguments: ["127.0.0.3", "localhost", "::1"])
    func loopbackAllowed(address: String) throws {
        if address == "::1" && !ipv6LoopbackWorks() { return }
        try withScope { scope in
            let server = try scope.start(E2E.builtBackends[0], options: ["--bind", address])
            #expect(server.isAlive)
        }
    }

    private func ipv6LoopbackWorks() -> Bool {
        let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_addr = in6addr_loopback
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
        } == 0
    }
}
