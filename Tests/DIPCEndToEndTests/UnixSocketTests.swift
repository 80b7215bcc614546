import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--unix PATH` (SPEC §1, §3 Access).
@Suite("unix socket")
struct UnixSocketTests {
    static func socketPath(_ scope: Scope) -> String { scope.dir + "/dipc.sock" }

    /// Whether `path` exists as a socket, and its permission bits.
    static func socketMode(_ path: String) -> mode_t? {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { return nil }
        return info.st_mode & 0o7777
    }

    @Test("the socket is 0600 even under umask 000, serves the protocol, and is recorded")
    func modeAndService() throws {
        try withScope { scope in
            let path = Self.socketPath(scope)
            let port = try freePort()
            let args = try Scope.arguments(backend: E2E.builtBackends[0], name: scope.name, options: ["--unix", path],
                                       mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1)
            let quoted = args.map { "'\($0)'" }.joined(separator: " ")
            let r = try runProcess("/bin/sh", ["-c", "umask 000; exec '\(try Binaries.path("dipc"))' \(quoted)"],
                                   env: scope.env, timeout: E2E.startTimeout)
            try #require(r.status == 0, "\(r)")
            #expect(Self.socketMode(path) == 0o600, "mode \(String(Self.socketMode(path) ?? 0, radix: 8))")
            #expect(scope.readRecord(port)?["unix"] == path)
            let c = try Conn(unixPath: path)
            #expect(try c.write(2, "over unix") == 1)
            #expect(try Conn(port: port).read(2).data == Array("over unix".utf8), "the same store over TCP")
            #expect(try c.request("q") == "bye")
            let stop = try scope.dipcrm(port)
            #expect(stop.status == 0, "\(stop)")
            #expect(Self.socketMode(path) == nil, "the socket file outlived dipcrm")
        }
    }

    @Test("--auth-file applies on the Unix socket")
    func authApplies() throws {
        try withScope { scope in
            let path = Self.socketPath(scope)
            let token = try scope.secretFile("token", TokenAuthenticationTests.token)
            _ = try scope.start(E2E.builtBackends[0], options: ["--unix", path, "--auth-file", token])
            let c = try Conn(unixPath: path)
            #expect(try c.request("r 0") == TokenAuthenticationTests.refused)
            #expect(try c.request("a \(TokenAuthenticationTests.token)") == "ok")
            #expect(try c.request("r 0") == "ok 0 0")
        }
    }

    @Test("Unix and TCP connections count together in --max-clients")
    func countedWithTCP() throws {
        try withScope { scope in
            let path = Self.socketPath(scope)
            let server = try scope.start(E2E.builtBackends[0], options: ["--unix", path, "--max-clients", "1"])
            let tcp = try server.connect()
            #expect(try tcp.request("r 0") == "ok 0 0")
            let unix = try Conn(unixPath: path)
            #expect(try unix.readLine().hasPrefix("err busy "))
            tcp.close()
            #expect(waitUntil(timeout: 5) { (try? Conn(unixPath: path).request("r 0")) == "ok 0 0" })
        }
    }

    @Test("after a crash dipcrm removes the socket file; a stale file is replaced at start-up")
    func crashCleanUpAndStale() throws {
        try withScope { scope in
            let path = Self.socketPath(scope)
            let first = try scope.start(E2E.builtBackends[0], options: ["--unix", path])
            first.kill(SIGKILL)
            try #require(first.waitGone(), "pid \(first.pid) survived SIGKILL")
            #expect(Self.socketMode(path) != nil, "a killed server cannot remove its socket")
            // Stale (nothing listens): a new server on another port replaces it.
            let second = try scope.start(E2E.builtBackends[0], name: scope.newName(), options: ["--unix", path])
            #expect(try Conn(unixPath: path).request("i").contains("port=\(second.port)"))
            second.kill(SIGKILL)
            try #require(second.waitGone(), "pid \(second.pid) survived SIGKILL")
            let rm = try scope.dipcrm(second.port)
            #expect(rm.status == 0 && rm.out.contains("removed the Unix socket \(path)"), "\(rm)")
            #expect(Self.socketMode(path) == nil, "dipcrm left the crashed server's socket")
            #expect(try scope.dipcrm(first.port).status == 0)
        }
    }

    /// A failed start beside a live server of the same scope: status 1, one line, no record.
    static func expectOneLineFailure(_ r: ProcessResult, mentioning: String, scope: Scope, port: Int,
                                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 1 && r.err.hasSuffix("\n") && r.err.split(separator: "\n").count == 1, "\(r)", sourceLocation: sourceLocation)
        #expect(r.err.contains(mentioning), "\(r)", sourceLocation: sourceLocation)
        #expect(scope.readRecord(port) == nil, "a record for the failed server", sourceLocation: sourceLocation)
        #expect(!portAccepts(port), sourceLocation: sourceLocation)
    }

    @Test("a live socket is refused at start-up, and a path that is not a socket too")
    func liveRefused() throws {
        try withScope { scope in
            let path = Self.socketPath(scope)
            let live = try scope.start(E2E.builtBackends[0], options: ["--unix", path])
            let port = try freePort()
            let other = scope.newName()
            let r = try scope.dipc(Scope.arguments(backend: E2E.builtBackends[0], name: other, options: ["--unix", path],
                                                   mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            Self.expectOneLineFailure(r, mentioning: "already listens", scope: scope, port: port)
            #expect(try Conn(unixPath: path).request("i").contains("port=\(live.port)"), "the live socket was taken over")
            let file = try scope.secretFile("plain-file", "x")
            let notSocket = try scope.dipc(Scope.arguments(backend: E2E.builtBackends[0], name: other, options: ["--unix", file],
                                                           mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            Self.expectOneLineFailure(notSocket, mentioning: "not a socket", scope: scope, port: port)
            #expect(FileManager.default.fileExists(atPath: file))
        }
    }
}
