import Foundation
import Testing

/// The `dipc-client` command, black-box.
@Suite("dipc-client")
struct ClientToolTests {
    @Test("write TEXT, read prints exactly the data", arguments: E2E.builtBackends)
    func writeRead(backend: String) throws {
        try withServer(backend) { server, scope in
            let p = ["--port", "\(server.port)"]
            let w = try scope.client(p + ["write", "1", "hello"])
            #expect(w.status == 0, "\(w)")
            let r = try scope.client(p + ["read", "1"])
            #expect(r.status == 0, "\(r)")
            #expect(r.stdout == Array("hello".utf8), "read 1 stdout must be exactly the data: \(r)")
            // Visible to raw clients too.
            let (d, v) = try server.connect().read(1)
            #expect(d == Array("hello".utf8) && v == 1)
            // --host works.
            let h = try scope.client(["--host", "127.0.0.1"] + p + ["read", "1"])
            #expect(h.status == 0 && h.stdout == Array("hello".utf8), "\(h)")
            // An empty mailbox prints nothing.
            let e = try scope.client(p + ["read", "0"])
            #expect(e.status == 0 && e.stdout.isEmpty, "\(e)")
        }
    }

    @Test("write from stdin is verbatim, binary included", arguments: E2E.builtBackends)
    func writeStdin(backend: String) throws {
        try withServer(backend) { server, scope in
            let p = ["--port", "\(server.port)"]
            let data = (0...255).map { UInt8($0) } + Array("\n\r\n trailing newline\n".utf8)
            let w = try scope.client(p + ["write", "2"], stdin: data)
            #expect(w.status == 0, "\(w)")
            let (d, _) = try server.connect().read(2)
            #expect(d == data, "stdin not stored verbatim: \(d.count) of \(data.count) bytes")
            let r = try scope.client(p + ["read", "2"])
            #expect(r.status == 0 && r.stdout == data, "read 2 not verbatim: \(r.stdout.count) bytes, status \(r.status)")
            // A full mailbox from stdin.
            let big = randomBytes(4096)
            let wb = try scope.client(p + ["write", "3"], stdin: big)
            #expect(wb.status == 0, "\(wb)")
            #expect(try scope.client(p + ["read", "3"]).stdout == big)
            // Too big: the server's err size is an exit 1.
            let tooBig = try scope.client(p + ["write", "3"], stdin: big + [1])
            #expect(tooBig.status == 1 && !tooBig.err.isEmpty, "\(tooBig)")
            #expect(try server.connect().read(3).data == big, "oversized write changed the mailbox")
            // Empty stdin is an empty value.
            let we = try scope.client(p + ["write", "3"], stdin: [])
            #expect(we.status == 0, "\(we)")
            #expect(try server.connect().request("r 3") == "ok 0 2", "empty stdin must write an empty value")
        }
    }

    @Test("server errors and unreachable servers exit 1 with a reason", arguments: E2E.builtBackends)
    func errors(backend: String) throws {
        try withServer(backend) { server, scope in
            let p = ["--port", "\(server.port)"]
            let r = try scope.client(p + ["read", "9"])
            #expect(r.status == 1, "\(r)")
            #expect(!r.err.isEmpty && r.stdout.isEmpty, "\(r)")
            let w = try scope.client(p + ["write", "4", "x"])
            #expect(w.status == 1 && !w.err.isEmpty, "\(w)")
            let free = try freePort()
            let u = try scope.client(["--port", "\(free)", "read", "1"])
            #expect(u.status == 1 && !u.err.isEmpty, "unreachable port: \(u)")
        }
    }

    @Test("bad usage exits 2")
    func badUsage() throws {
        try withScope { scope in
            let port = try freePort()
            for args in [[], ["frobnicate"], ["read"], ["read", "abc"], ["read", "-1"], ["write"],
                ["--port", "abc", "read", "1"], ["read", "1", "2"], ["--no-such-flag", "read", "1"]]
            {
                let r = try scope.client((args.first == "--port" ? [] : ["--port", "\(port)"]) + args)
                #expect(r.status == 2, "dipc-client \(args.joined(separator: " ")): \(r)")
                #expect(!r.err.isEmpty, "bad usage should explain on stderr: \(r)")
            }
        }
    }

    @Test("info shows the server", arguments: E2E.builtBackends)
    func info(backend: String) throws {
        try withServer(backend) { server, scope in
            let r = try scope.client(["--port", "\(server.port)", "info"])
            #expect(r.status == 0, "\(r)")
            #expect(r.out.contains(backend) && r.out.contains("4096"), "info output: \(r)")
        }
    }

    @Test("shell reads commands from stdin", arguments: E2E.builtBackends)
    func shell(backend: String) throws {
        try withServer(backend) { server, scope in
            try server.connect().write(1, "shellvalue")
            let r = try scope.client(["--port", "\(server.port)", "shell"], stdin: Array("r 1\nquit\n".utf8))
            #expect(r.status == 0, "\(r)")
            #expect(r.out.contains("shellvalue"), "shell `r 1` output: \(r)")
        }
    }
}
