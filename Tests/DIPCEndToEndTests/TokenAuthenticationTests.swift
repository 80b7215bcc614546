import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension Scope {
    /// Writes `contents` to a file in the scope's directory with `mode`; returns its path.
    func secretFile(_ name: String, _ contents: String, mode: mode_t = 0o600) throws -> String {
        let path = dir + "/" + name
        try contents.write(toFile: path, atomically: false, encoding: .utf8)
        guard chmod(path, mode) == 0 else { throw E2EError("chmod \(path): errno \(errno)") }
        return path
    }
}

/// `--auth-file` and `a TOKEN` (SPEC §1, §2) on the real binaries.
@Suite("token authentication")
struct TokenAuthenticationTests {
    static let token = "s3cret-Token-\(getpid())-0123456789"
    static let refused = "err auth authentication required"

    /// A scope with a server that requires `token`.
    func withGuardedServer(options: [String] = [], _ body: (Server, Scope) throws -> Void) throws {
        try withScope { scope in
            let file = try scope.secretFile("token", Self.token + "\n")
            let server = try scope.start(E2E.builtBackends[0], options: ["--auth-file", file] + options)
            try body(server, scope)
        }
    }

    @Test("refused before a, served after it; the connection stays open")
    func servedAfterA() throws {
        try withGuardedServer { server, _ in
            let c = try server.connect()
            for request in ["r 0", "i", "s", "c 0", "r 9"] {
                #expect(try c.request(request) == Self.refused, "\(request)")
            }
            #expect(try c.request("a \(Self.token)") == "ok")
            #expect(try c.write(1, "after") == 1)
            #expect(try c.request("r 0") == "ok 0 0")
            #expect(try c.request("a \(Self.token)") == "ok", "a second a with the right token")
            #expect(try c.request("q") == "bye")
        }
    }

    @Test("the data of a refused w or p is read and dropped in sync; nothing is changed")
    func refusedDataDropped() throws {
        try withGuardedServer { server, _ in
            let c = try server.connect()
            // The data looks like requests: it must be skipped, not served.
            try c.send("w 0 4\nq 1\n" + "p 1 6 0\nq\nw 0\n" + "w 0\nq\n")
            #expect(try c.readLine() == Self.refused)
            #expect(try c.readLine() == Self.refused)
            #expect(try c.readLine() == Self.refused)
            #expect(try c.request("a \(Self.token)") == "ok")
            #expect(try c.request("r 0") == "ok 0 0", "the refused w changed mailbox 0")
            #expect(try c.request("c 1") == "err empty mailbox 1 has no message", "the refused p pushed")
        }
    }

    @Test("a wrong token is err auth and closes; a malformed one is err syntax")
    func wrongTokenCloses() throws {
        try withGuardedServer { server, _ in
            let c = try server.connect()
            #expect(try c.request("a short").hasPrefix("err syntax "))
            #expect(try c.request("a \(Self.token)x") == "err auth wrong token")
            #expect(c.waitForClose() == .closed)
            let d = try server.connect()
            #expect(try d.request("a \(Self.token)") == "ok", "a new connection may try again")
        }
    }

    @Test("q is served before a")
    func quitBeforeA() throws {
        try withGuardedServer { server, _ in
            let c = try server.connect()
            #expect(try c.request("q") == "bye")
            #expect(c.waitForClose() == .closed)
        }
    }

    @Test("without --auth-file, a is err auth and the connection stays open")
    func noTokenRequired() throws {
        try withServer(E2E.builtBackends[0]) { server, _ in
            let c = try server.connect()
            #expect(try c.request("a \(Self.token)") == "err auth no token is required")
            #expect(try c.request("r 0") == "ok 0 0")
        }
    }

    @Test("neither the token nor what clients send in a reaches the log, the record, i or stderr")
    func tokenNeverShown() throws {
        let wrong = "Wrong-Guess-\(getpid())-abcdefghij"
        try withGuardedServer { server, scope in
            let c = try server.connect()
            #expect(try c.request("a \(Self.token)") == "ok")
            let info = try c.request("i")
            #expect(!info.contains(Self.token), "\(info)")
            _ = try server.connect().request("a \(wrong)")
            _ = try server.connect().request("a \(wrong) extra")
            let stop = try scope.dipcrm(server.port)
            #expect(stop.status == 0, "\(stop)")
            let log = (try? String(contentsOfFile: scope.runtimeDir + "/dipc-\(server.port).log", encoding: .utf8)) ?? ""
            #expect(!log.isEmpty, "no log")
            for secret in [Self.token, wrong] {
                #expect(!log.contains(secret), "the log holds \(secret)")
                #expect(!server.startLine.contains(secret))
                #expect(!stop.out.contains(secret) && !stop.err.contains(secret))
                #expect(!server.record.values.contains { $0.contains(secret) })
            }
        }
    }

    @Test("the auth file may end its line with \\r\\n and carry more lines")
    func firstLineOnly() throws {
        try withScope { scope in
            let file = try scope.secretFile("token", Self.token + "\r\nsecond line\n")
            let server = try scope.start(E2E.builtBackends[0], options: ["--auth-file", file])
            #expect(try server.connect().request("a \(Self.token)") == "ok")
        }
    }

    static let badFiles: [(name: String, contents: String?, mode: mode_t, mentions: String)] = [
        ("missing", nil, 0o600, "no such file"),
        ("group-readable", token, 0o640, "group or others"),
        ("world-readable", token, 0o604, "group or others"),
        ("group-writable", token, 0o620, "group or others"),
        ("too-short", "0123456789abcde", 0o600, "visible ascii"),
        ("too-long", String(repeating: "x", count: 201), 0o600, "visible ascii"),
        ("with-a-space", "0123456789 abcdef", 0o600, "visible ascii"),
        ("not-ascii", "0123456789abcdefé", 0o600, "visible ascii"),
        ("empty", "", 0o600, "visible ascii"),
        ("empty-first-line", "\n" + token, 0o600, "visible ascii"),
    ]

    @Test("an auth file that is missing, badly shaped or open to others is a one-line start-up failure",
          arguments: badFiles.indices)
    func badAuthFile(_ index: Int) throws {
        let bad = Self.badFiles[index]
        try withScope { scope in
            let path: String
            if let contents = bad.contents {
                path = try scope.secretFile(bad.name, contents, mode: bad.mode)
            } else {
                path = scope.dir + "/" + bad.name
            }
            let port = try freePort()
            let r = try scope.dipc(Scope.arguments(
                backend: E2E.builtBackends[0], name: scope.name, options: ["--auth-file", path],
                mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name], mentions: [bad.mentions])
            if let contents = bad.contents, contents.count >= 16 { #expect(!r.err.contains(contents), "\(r)") }
        }
    }
}
