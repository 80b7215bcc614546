import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `--tls-cert`, `--tls-key`, `--tls-ca` (SPEC §1, §2, §3 Access), with certificates made
/// by the `openssl` CLI for each test.
@Suite("tls", .requires(.openssl))
struct TLSTests {
    static let backend = E2E.builtBackends[0]

    /// A scope with fresh certificates and a TLS server (mutual TLS when asked).
    func withTLSServer(mutual: Bool = false, options: [String] = [],
                       _ body: (Server, Scope, TestCertificates) throws -> Void) throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start(Self.backend, options: certificates.serverOptions(mutual: mutual) + options)
            try body(server, scope, certificates)
        }
    }

    @Test("served to a verifying client (dipc-client) and to openssl s_client")
    func served() throws {
        try withTLSServer { server, scope, certificates in
            let tls = ["--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca]
            let write = try scope.client(tls + ["write", "1", "hello"])
            #expect(write.status == 0 && write.out == "1\n", "\(write)")
            let s = try certificates.sClient(port: server.port, input: "r 1\nw 2 3\nabcq\n")
            #expect(s.out == "ok 5 1\nhellook 1\nbye\n", "\(s)")
            let read = try scope.client(["--host", "localhost"] + tls + ["read", "2"])
            #expect(read.status == 0 && read.out == "abc", "a verified host name: \(read)")
        }
    }

    @Test("a value of many TLS records and packets round-trips intact")
    func largeValue() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start(Self.backend, mailboxKB: 512, packetKB: 4, options: certificates.serverOptions())
            let value = randomBytes(300 * 1024 + 7)
            let tls = ["--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca]
            let write = try scope.client(tls + ["write", "1"], stdin: value)
            #expect(write.status == 0 && write.out == "1\n", "\(write)")
            let read = try scope.client(tls + ["read", "1"])
            #expect(read.status == 0 && read.stdout == value, "read \(read.stdout.count) bytes, status \(read.status)")
        }
    }

    @Test("pipelined requests in one record, many one-byte records at once, and a request split over records with pauses are answered in order")
    func recordBoundaries() throws {
        try withTLSServer { server, _, certificates in
            let c = try server.connect()
            try c.startTLS(caFile: certificates.ca)
            func expectReplies(_ step: String) throws {
                #expect(try c.readLine() == "ok 1", "\(step): w 0")
                #expect(try c.readLine() == "ok 1", "\(step): w 1")
                #expect(try c.readLine() == "ok 3 1", "\(step): r 0")
                #expect(try c.readBytes(3) == Array("abc".utf8), "\(step): r 0's value")
                #expect(try c.readLine() == "ok 2 1", "\(step): r 1")
                #expect(try c.readBytes(2) == Array("xy".utf8), "\(step): r 1's value")
            }
            // Four requests in one record (the server reads ahead; all four are answered).
            try c.send("w 0 3\nabcw 1 2\nxyr 0\nr 1\n")
            try expectReplies("one record")
            // One record per byte, sent back to back: several records per read.
            try c.send("w 2 1\nz")
            #expect(try c.readLine() == "ok 1")
            for byte in Array("w 0 3\nabcw 1 2\nxyr 0\nr 1\n".utf8) { try c.send([byte]) }
            #expect(try c.readLine() == "ok 2", "one-byte records: w 0")
            #expect(try c.readLine() == "ok 2", "one-byte records: w 1")
            #expect(try c.readLine() == "ok 3 2" && (try c.readBytes(3)) == Array("abc".utf8), "one-byte records: r 0")
            #expect(try c.readLine() == "ok 2 2" && (try c.readBytes(2)) == Array("xy".utf8), "one-byte records: r 1")
            // One request whose records arrive 0.5 ms apart: the server waits between them.
            try c.sendSplit(Array("r 2\n".utf8))
            #expect(try c.readLine() == "ok 1 1" && (try c.readBytes(1)) == Array("z".utf8), "split request")
        }
    }

    @Test("a plaintext client gets nothing in clear and is closed")
    func plaintextRefused() throws {
        try withTLSServer { server, _, _ in
            let c = try server.connect()
            try c.send("r 0\ni\n")
            switch c.waitForClose(timeout: 10) {
            case .closed: break
            case let .data(bytes):
                let text = String(decoding: bytes, as: UTF8.self)
                #expect(!text.contains("ok") && !text.contains("err"), "plaintext reply \(text.debugDescription)")
            case .stillOpen:
                Issue.record("a plaintext client is still connected")
            }
            #expect(server.isAlive)
        }
    }

    @Test("TLS 1.1 is refused in the handshake")
    func tls11Refused() throws {
        try withTLSServer { server, _, certificates in
            let s = try certificates.sClient(port: server.port, input: "r 0\nq\n",
                                             extra: ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"])
            #expect(s.status != 0 && !s.out.contains("ok"), "\(s)")
        }
    }

    @Test("a handshake that stalls is cut by --io-timeout")
    func stalledHandshake() throws {
        try withTLSServer(options: ["--io-timeout", "1"]) { server, _, _ in
            let c = try server.connect()
            let start = monotonicNow()
            #expect(c.waitForClose(timeout: 8) == .closed)
            #expect(monotonicNow() - start < 6, "closed after \(monotonicNow() - start) s")
        }
    }

    @Test("a stop does not wait for a stalled handshake")
    func stopDuringHandshake() throws {
        try withTLSServer { server, scope, _ in
            let stalled = try server.connect()
            _ = stalled.staysSilent(for: 0.2)  // the server is in SSL_accept now
            let start = monotonicNow()
            let stop = try scope.dipcrm(server.port)
            #expect(stop.status == 0, "\(stop)")
            #expect(monotonicNow() - start < 4, "dipcrm took \(monotonicNow() - start) s")
            #expect(stalled.waitForClose() == .closed)
        }
    }

    @Test("mutual TLS: a good client certificate is served; a missing or foreign one is refused in the handshake")
    func mutual() throws {
        try withTLSServer(mutual: true) { server, scope, certificates in
            let tls = ["--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca]
            let good = try scope.client(tls + ["--tls-cert", certificates.clientCert, "--tls-key", certificates.clientKey, "write", "0", "mutual"])
            #expect(good.status == 0 && good.out == "1\n", "\(good)")
            let missing = try scope.client(tls + ["read", "0"])
            #expect(missing.status == 1 && missing.out.isEmpty, "\(missing)")
            let foreign = try scope.client(tls + ["--tls-cert", certificates.foreignClientCert, "--tls-key", certificates.foreignClientKey, "read", "0"])
            #expect(foreign.status == 1 && foreign.out.isEmpty, "\(foreign)")
            let s = try certificates.sClient(port: server.port, input: "r 0\nq\n")
            #expect(!s.out.contains("mutual"), "s_client without a certificate was served: \(s)")
            let sGood = try certificates.sClient(port: server.port, input: "r 0\nq\n",
                                                 extra: ["-cert", certificates.clientCert, "-key", certificates.clientKey])
            #expect(sGood.out == "ok 6 1\nmutualbye\n", "\(sGood)")
        }
    }

    @Test("no byte of a request or reply crosses the wire in clear (a plain server shows the relay sees it)",
          arguments: [true, false])
    func nothingInClear(tls: Bool) throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start(Self.backend, options: tls ? certificates.serverOptions() : [])
            let relay = try RecordingRelay(to: server.port)
            defer { relay.stop() }
            let unique = "unique-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            let options = ["--port", "\(relay.port)"] + (tls ? ["--tls", "--tls-ca", certificates.ca] : [])
            let write = try scope.client(options + ["write", "3", unique])
            #expect(write.status == 0 && write.out == "1\n", "\(write)")
            let read = try scope.client(options + ["read", "3"])
            #expect(read.status == 0 && read.out == unique, "\(read)")
            let seen = relay.bytes
            try #require(seen.count > 2 * unique.count, "the relay saw \(seen.count) bytes")
            let clear = [unique, "w 3 \(unique.utf8.count)\n", "r 3\n", "ok \(unique.utf8.count) 1\n", "ok 1\n", "bye\n"]
            for text in clear {
                #expect(seen.contains(bytes: Array(text.utf8)) == !tls, "\(text.debugDescription) on the wire: \(!tls)")
            }
        }
    }

    @Test("over --max-clients a TLS client gets err busy inside TLS")
    func busyInsideTLS() throws {
        try withTLSServer(options: ["--max-clients", "1"]) { server, _, certificates in
            let holder = try ChildProcess(
                "/usr/bin/openssl",
                ["s_client", "-quiet", "-CAfile", certificates.ca, "-connect", "127.0.0.1:\(server.port)"],
                env: ProcessInfo.processInfo.environment, stdin: Array("r 0\n".utf8))
            defer {
                kill(holder.pid, SIGKILL)
                _ = holder.wait(timeout: 5)
            }
            try #require(holder.readStdoutLine(timeout: E2E.replyTimeout) == "ok 0 0", "the first client was not served")
            let s = try certificates.sClient(port: server.port, input: "r 0\n")
            #expect(s.out.hasPrefix("err busy "), "\(s)")
        }
    }

    @Test("the Unix socket beside a TLS port speaks plain text")
    func unixIsPlain() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let path = scope.dir + "/tls.sock"
            _ = try scope.start(Self.backend, options: certificates.serverOptions() + ["--unix", path])
            #expect(try Conn(unixPath: path).request("r 0") == "ok 0 0")
            let client = try scope.client(["--unix", path, "read", "0"])
            #expect(client.status == 0 && client.out.isEmpty, "\(client)")
        }
    }

    @Test("the server's certificate must name the host connected to")
    func hostVerified() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start(Self.backend, options: certificates.serverOptions() + ["--bind", "127.0.0.2"])
            let r = try scope.client(["--host", "127.0.0.2", "--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca, "read", "0"])
            #expect(r.status == 1 && r.err.contains("certificate"), "\(r)")
        }
    }

    @Test("protected mode: --tls-ca is authentication, --tls-cert alone is not")
    func protectedMode() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let server = try scope.start(Self.backend, options: certificates.serverOptions(mutual: true) + ["--bind", "0.0.0.0"])
            #expect(server.isAlive)
            let port = try freePort()
            let name = scope.newName()
            let r = try scope.dipc(Scope.arguments(backend: Self.backend, name: name,
                                                   options: certificates.serverOptions() + ["--bind", "0.0.0.0"],
                                                   mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            UnixSocketTests.expectOneLineFailure(r, mentioning: "refusing to serve 0.0.0.0 without authentication", scope: scope, port: port)
        }
    }

    static let badOptions: [(options: @Sendable (TestCertificates) -> [String], mentions: String)] = [
        ({ ["--tls-cert", $0.serverCert, "--tls-key", $0.clientKey] }, "does not match"),
        ({ ["--tls-cert", $0.dir + "/missing.pem", "--tls-key", $0.serverKey] }, "cannot read the TLS certificate"),
        ({ ["--tls-cert", $0.serverCert, "--tls-key", $0.dir + "/missing.key"] }, "cannot read the TLS key"),
        ({ ["--tls-cert", $0.dir + "/server.ext", "--tls-key", $0.serverKey] }, "cannot load the TLS certificate"),
        ({ ["--tls-cert", $0.serverCert, "--tls-key", $0.serverCert] }, "cannot load the TLS key"),
        ({ ["--tls-key", $0.serverKey] }, "--tls-key needs --tls-cert"),
        ({ ["--tls-ca", $0.ca] }, "--tls-ca needs --tls-cert"),
        ({ ["--tls-cert", $0.serverCert] }, "--tls-cert needs --tls-key"),
        ({ $0.serverOptions() + ["--tls-ca", $0.dir + "/missing-ca.pem"] }, "cannot read the TLS client CA"),
    ]

    @Test("bad TLS files and options are one-line start-up failures", arguments: badOptions.indices)
    func badTLSOptions(_ index: Int) throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let port = try freePort()
            let r = try scope.dipc(Scope.arguments(backend: Self.backend, name: scope.name,
                                                   options: Self.badOptions[index].options(certificates),
                                                   mailboxes: 4, mailboxKB: 4, port: port, packetKB: 1))
            StartupFailureTests.expectCleanFailure(r, scope: scope, port: port, names: [scope.name],
                                                   mentions: [Self.badOptions[index].mentions.lowercased()])
        }
    }
}

/// dipc-client's access options (SPEC §1 `dipc-client`).
@Suite("client access options")
struct ClientAccessOptionTests {
    @Test("--auth-file and $DIPC_AUTH_FILE send the token first; without it the server refuses")
    func authFile() throws {
        try withScope { scope in
            let token = try scope.secretFile("token", TokenAuthenticationTests.token + "\n")
            let path = scope.dir + "/auth.sock"
            let server = try scope.start(E2E.builtBackends[0], options: ["--auth-file", token, "--unix", path])
            let port = ["--port", "\(server.port)"]
            let write = try scope.client(port + ["--auth-file", token, "write", "1", "tok"])
            #expect(write.status == 0 && write.out == "1\n", "\(write)")
            let env = try runProcess(try Binaries.path("dipc-client"), port + ["read", "1"],
                                     env: scope.env.merging(["DIPC_AUTH_FILE": token]) { $1 }, timeout: E2E.clientTimeout)
            #expect(env.status == 0 && env.out == "tok", "\(env)")
            let unix = try scope.client(["--unix", path, "--auth-file", token, "read", "1"])
            #expect(unix.status == 0 && unix.out == "tok", "\(unix)")
            let none = try scope.client(port + ["read", "1"])
            #expect(none.status == 1 && none.err == "dipc-client: server error auth: authentication required\n", "\(none)")
            let wrong = try scope.secretFile("wrong", "Wrong-Token-0123456789\n")
            let bad = try scope.client(port + ["--auth-file", wrong, "read", "1"])
            #expect(bad.status == 1 && bad.err.contains("auth") && !bad.err.contains("Wrong-Token"), "\(bad)")
        }
    }

    @Test("Examples/python speaks mutual TLS with a token, and the Unix socket with $DIPC_AUTH_FILE", .requires(.openssl))
    func python() throws {
        try withScope { scope in
            let certificates = try TestCertificates(in: scope)
            let token = try scope.secretFile("token", TokenAuthenticationTests.token + "\n")
            let path = scope.dir + "/py.sock"
            let server = try scope.start(E2E.builtBackends[0],
                                         options: certificates.serverOptions(mutual: true) + ["--auth-file", token, "--unix", path])
            let example = repositoryRoot + "/Examples/python/example.py"
            let tls = try runProcess(
                "/usr/bin/env",
                ["python3", example, "--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca,
                 "--tls-cert", certificates.clientCert, "--tls-key", certificates.clientKey, "--auth-file", token],
                env: scope.env, timeout: E2E.clientTimeout)
            #expect(tls.status == 0 && tls.out.contains("register: wrote version 1, read 'hello from python'"), "\(tls)")
            let unix = try runProcess("/usr/bin/env", ["python3", example, "--unix", path],
                                      env: scope.env.merging(["DIPC_AUTH_FILE": token]) { $1 }, timeout: E2E.clientTimeout)
            #expect(unix.status == 0 && unix.out.contains("register: wrote version 2"), "\(unix)")
            let refused = try runProcess("/usr/bin/env", ["python3", example, "--port", "\(server.port)", "--tls", "--tls-ca", certificates.ca],
                                         env: scope.env, timeout: E2E.clientTimeout)
            #expect(refused.status != 0, "served without a client certificate: \(refused)")
        }
    }

    @Test("bad combinations of access options are usage errors (status 2)", arguments: [
        ["--tls-ca", "ca.pem", "read", "0"], ["--tls", "--tls-cert", "c.pem", "read", "0"],
        ["--unix", "/tmp/x.sock", "--tls", "read", "0"],
    ])
    func badUsage(args: [String]) throws {
        try withScope { scope in
            let r = try scope.client(args)
            #expect(r.status == 2 && r.err.hasPrefix("dipc-client: ") && r.err.split(separator: "\n").count == 1, "\(r)")
        }
    }
}
