import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// How a test's connections reach the server: the hostile-client tests run over each
/// (issue 15: "also through an authenticated and a TLS connection").
enum Transport: String, Sendable, CaseIterable {
    /// Plain TCP to a server without access options.
    case plain
    /// Plain TCP to a server with `--auth-file`; a connection sends the right `a TOKEN`
    /// first (unless made with `authenticated: false`).
    case token
    /// TLS to a server with `--tls-cert`/`--tls-key`; a connection verifies the server.
    case tls
}

/// One backend reached over one transport: a test argument.
struct Route: Sendable, CustomTestStringConvertible {
    let backend: String
    let transport: Transport

    var testDescription: String { "\(backend) over \(transport.rawValue)" }

    /// Plain TCP on each of `backends`, then the token and TLS transports on the first.
    static func all(plainOn backends: some Collection<String>) -> [Route] {
        backends.map { Route(backend: $0, transport: .plain) }
            + [Transport.token, .tls].map { Route(backend: E2E.builtBackends[0], transport: $0) }
    }

    /// Every transport on the first backend.
    static var firstBackend: [Route] { all(plainOn: E2E.builtBackends.prefix(1)) }
}

/// Makes connections to one server over one transport; usable from any thread.
struct Dialer: Sendable {
    let port: Int
    let transport: Transport
    /// The server's token (transport `.token`).
    let token: String?
    /// The CA that signed the server's certificate (transport `.tls`).
    let caFile: String?

    /// A connection ready for requests: TLS handshaken, or `a TOKEN` answered `ok`
    /// (unless `authenticated` is false).
    func connect(timeout: Double = E2E.replyTimeout, authenticated: Bool = true) throws -> Conn {
        let c = try Conn(port: port, timeout: timeout)
        switch transport {
        case .plain:
            break
        case .token:
            if authenticated, let token {
                let reply = try c.request("a \(token)")
                guard reply == "ok" else { throw E2EError("`a TOKEN` on port \(port) answered \(reply.debugDescription)") }
            }
        case .tls:
            guard let caFile else { throw E2EError("a TLS dialer without a CA file") }
            try c.startTLS(caFile: caFile)
        }
        return c
    }
}

/// A scope with one server (4 mailboxes of 4 KiB, 1 KiB packets) set up for `route`'s
/// transport, and a dialer for it.
func withServer<T>(
    _ route: Route, options: [String] = [], _ body: (Server, Dialer, Scope) throws -> T
) throws -> T {
    try withScope { scope in
        var access: [String] = []
        var token: String?
        var caFile: String?
        switch route.transport {
        case .plain:
            break
        case .token:
            let secret = "hostile-Token-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            access = ["--auth-file", try scope.secretFile("token", secret + "\n")]
            token = secret
        case .tls:
            try #require(Requirement.openssl.isMet(), "the TLS transport needs \(Requirement.openssl.what)")
            let certificates = try TestCertificates(in: scope)
            access = certificates.serverOptions()
            caFile = certificates.ca
        }
        let server = try scope.start(route.backend, options: access + options)
        return try body(server, Dialer(port: server.port, transport: route.transport, token: token, caFile: caFile), scope)
    }
}
