import Foundation
import Testing

/// SPEC §2 over raw sockets, byte-exact. Every server: 4 mailboxes of 4 KiB, 1 KiB packets.
@Suite("wire protocol")
struct ProtocolTests {
    @Test("fresh mailbox reads `ok 0 0`; writes bump the version; reads return the data", arguments: E2E.builtBackends)
    func writeReadVersions(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            for m in 0..<4 { #expect(try c.request("r \(m)") == "ok 0 0", "fresh mailbox \(m)") }
            try c.send("w 1 5\nhello")
            #expect(try c.readLine() == "ok 1", "w 1 5 hello")
            try c.send("r 1\n")
            #expect(try c.readLine() == "ok 5 1")
            #expect(try c.readBytes(5) == Array("hello".utf8))
            try c.send("w 1 3\nabc")
            #expect(try c.readLine() == "ok 2")
            let (d, v) = try c.read(1)
            #expect(d == Array("abc".utf8) && v == 2, "r 1 after two writes: \(d) v\(v)")
            #expect(try c.request("r 0") == "ok 0 0", "other mailboxes untouched")
            #expect(try c.request("r 2") == "ok 0 0", "other mailboxes untouched")
            // Another connection sees the same.
            let c2 = try server.connect()
            let (d2, v2) = try c2.read(1)
            #expect(d2 == Array("abc".utf8) && v2 == 2)
        }
    }

    @Test("netcat form `w N` + line, with \\n and \\r\\n; `r N\\r\\n`", arguments: E2E.builtBackends)
    func netcatForm(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("w 1\nhello\n")
            #expect(try c.readLine() == "ok 1", "w 1\\nhello\\n")
            var (d, v) = try c.read(1)
            #expect(String(decoding: d, as: UTF8.self) == "hello" && v == 1)
            try c.send("w 1\r\nhello there\r\n")
            #expect(try c.readLine() == "ok 2", "w 1\\r\\nhello there\\r\\n")
            (d, v) = try c.read(1)
            #expect(String(decoding: d, as: UTF8.self) == "hello there" && v == 2, "\\r must be dropped: \(d)")
            try c.send("r 1\r\n")
            #expect(try c.readLine() == "ok 11 2", "r 1\\r\\n")
            #expect(try c.readBytes(11) == Array("hello there".utf8))
            // Only the \r right before the \n is dropped.
            try c.send("w 3\na\rb\r\r\n")
            #expect(try c.readLine() == "ok 1")
            #expect(try c.read(3).data == Array("a\rb\r".utf8), "netcat data keeps inner \\r")
            // Empty line is an empty value.
            try c.send("w 2\n\n")
            #expect(try c.readLine() == "ok 1", "w 2\\n\\n")
            #expect(try c.request("r 2") == "ok 0 1")
        }
    }

    @Test("empty value with `w N 0`", arguments: E2E.builtBackends)
    func emptyValue(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.write(3, "something")
            try c.send("w 3 0\n")
            #expect(try c.readLine() == "ok 2", "w 3 0")
            #expect(try c.request("r 3") == "ok 0 2", "r 3 after empty write")
            #expect(try c.request("r 0") == "ok 0 0", "next request after the empty read")
        }
    }

    @Test("binary data: every byte value, including \\n and \\r", arguments: E2E.builtBackends)
    func binaryData(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            let all = (0...255).map { UInt8($0) }
            let value = all + all.reversed() + Array("\n\r\n\nr 1\nw 1 3\n".utf8) + all
            let v = try c.write(2, value)
            #expect(v == 1)
            let (d, ver) = try c.read(2)
            #expect(d == value, "binary round trip differs (got \(d.count) bytes)")
            #expect(ver == 1)
            #expect(try c.request("r 0") == "ok 0 0", "connection in sync after binary data")
        }
    }

    @Test("a value larger than a packet round-trips exactly; LEN = mailbox size is fine", arguments: E2E.builtBackends)
    func largerThanPacket(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            let value = randomBytes(4096)
            #expect(try c.write(0, value) == 1)
            let (d, v) = try c.read(0)
            #expect(d == value && v == 1, "4096-byte value through 1 KiB packets: got \(d.count) bytes, v\(v)")
            // Odd sizes around the packet boundary.
            for n in [1023, 1024, 1025, 2049, 4095] {
                let val = randomBytes(n)
                try c.write(1, val)
                #expect(try c.read(1).data == val, "\(n)-byte value")
            }
        }
    }

    @Test("a 256 KiB value through 1 KiB packets", arguments: E2E.builtBackends)
    func bigMailbox(backend: String) throws {
        try withServer(backend, mailboxes: 2, mailboxKB: 256, packetKB: 1) { server, _ in
            let c = try server.connect()
            let value = randomBytes(256 * 1024)
            #expect(try c.write(1, value) == 1)
            let (d, v) = try c.read(1)
            #expect(d == value && v == 1, "got \(d.count) bytes v\(v)")
            let info = keyValues(try c.request("i"))
            #expect(info["mailbox_size"] == "262144" && info["mailboxes"] == "2", "\(info)")
        }
    }

    @Test("LEN over the mailbox size: `err size`, connection closed", arguments: E2E.builtBackends)
    func sizeError(backend: String) throws {
        try withServer(backend) { server, _ in
            var c = try server.connect()
            try c.send("w 1 4097\n")
            let line = try c.readLine()
            #expect(line.hasPrefix("err size"), "w 1 4097 -> \(line)")
            #expect(c.waitForClose() == .closed, "after err size")
            // Netcat form whose line is longer than the mailbox.
            c = try server.connect()
            try c.send(Array("w 1\n".utf8) + [UInt8](repeating: 97, count: 4097) + [10])
            let l2 = try c.readLine()
            #expect(l2.hasPrefix("err size"), "w 1 + 4097-byte line -> \(l2)")
            #expect(c.waitForClose() == .closed, "after netcat err size")
            // Order of checks: size before range.
            c = try server.connect()
            try c.send("w 9 5000\n")
            let l3 = try c.readLine()
            #expect(l3.hasPrefix("err size"), "w 9 5000 on 4 mailboxes (size checked before range) -> \(l3)")
            // Nothing was written.
            c = try server.connect()
            #expect(try c.request("r 1") == "ok 0 0")
        }
    }

    @Test("`err range`: connection stays open; a write's data is dropped", arguments: E2E.builtBackends)
    func rangeError(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            let l1 = try c.request("r 4")
            #expect(l1.hasPrefix("err range"), "r 4 on 4 mailboxes -> \(l1)")
            #expect(try c.request("r 0") == "ok 0 0", "after err range")
            let l2 = try c.request("r 18446744073709551615")
            #expect(l2.hasPrefix("err range"), "r 2^64-1 -> \(l2)")
            try c.send("w 9 3\nabc")
            let l3 = try c.readLine()
            #expect(l3.hasPrefix("err range"), "w 9 3 + abc -> \(l3)")
            #expect(try c.request("r 1") == "ok 0 0", "request after a dropped out-of-range write")
            try c.send("w 4\nsome line\n")
            let l4 = try c.readLine()
            #expect(l4.hasPrefix("err range"), "netcat w 4 -> \(l4)")
            #expect(try c.request("r 1") == "ok 0 0", "request after a dropped out-of-range netcat write")
        }
    }

    @Test("`err syntax` keeps the connection open", arguments: E2E.builtBackends)
    func syntaxErrorsStayOpen(backend: String) throws {
        let bad = [
            "x 1", "r", "r abc", "r +1", "r -1", "r 1x", "r  1", " r 1", "r 1 ", "r 1 2", "R 1", "w",
            "r 18446744073709551616", "i 1 2 3 4", String(repeating: "x", count: 255),
        ]
        try withServer(backend) { server, _ in
            let c = try server.connect()
            for req in bad {
                let line = try c.request(req)
                #expect(line.hasPrefix("err syntax"), "\(req.debugDescription) -> \(line.debugDescription)")
                #expect(try c.request("r 0") == "ok 0 0", "connection unusable after \(req.debugDescription)")
            }
            // A malformed mailbox number with a well-formed LEN: error, and the data is skipped.
            try c.send("w x 5\nhello")
            let l = try c.readLine()
            #expect(l.hasPrefix("err syntax"), "w x 5 + hello -> \(l)")
            #expect(try c.request("r 0") == "ok 0 0", "the 5 data bytes after `w x 5` were not skipped")
            // Error replies are one line `err CODE MESSAGE`.
            let e = try c.request("bogus")
            #expect(e.split(separator: " ").count >= 3, "error line should carry a message: \(e)")
        }
    }

    @Test("header over 256 bytes, or a malformed write LEN: `err syntax` and closed", arguments: E2E.builtBackends)
    func syntaxErrorsClose(backend: String) throws {
        let cases: [String] = [
            "r " + String(repeating: "1", count: 297) + "\n",  // 300 bytes
            String(repeating: "x", count: 256) + "\n",  // 257 bytes
            "w 1 x\n", "w 1 +5\n", "w 1 -5\n", "w 1 5x\n", "w 1 99999999999999999999\n",
        ]
        try withServer(backend) { server, _ in
            for req in cases {
                let c = try server.connect()
                try c.send(req)
                let line = try c.readLine()
                #expect(line.hasPrefix("err syntax"), "\(req.prefix(40).debugDescription)… -> \(line.debugDescription)")
                let after = c.waitForClose()
                #expect(after == .closed, "after \(req.prefix(40).debugDescription)…: \(after)")
            }
            #expect(try server.connect().request("r 1") == "ok 0 0", "server still serves")
        }
    }

    @Test("empty lines are ignored", arguments: E2E.builtBackends)
    func emptyLines(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("\n\r\n\nr 0\n")
            #expect(try c.readLine() == "ok 0 0")
            #expect(c.staysSilent(for: 0.3), "empty lines must not produce replies")
        }
    }

    @Test("pipelining: many requests in one send, replies in order", arguments: E2E.builtBackends)
    func pipelining(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("w 1 3\nabcr 1\nw 2 1\nxr 2\nr 9\nw 1\nnetcat\nr 1\nfoo\nr 3\ni\n")
            #expect(try c.readLine() == "ok 1")
            #expect(try c.readLine() == "ok 3 1")
            #expect(try c.readBytes(3) == Array("abc".utf8))
            #expect(try c.readLine() == "ok 1")
            #expect(try c.readLine() == "ok 1 1")
            #expect(try c.readBytes(1) == Array("x".utf8))
            #expect(try c.readLine().hasPrefix("err range"))
            #expect(try c.readLine() == "ok 2")
            #expect(try c.readLine() == "ok 6 2")
            #expect(try c.readBytes(6) == Array("netcat".utf8))
            #expect(try c.readLine().hasPrefix("err syntax"))
            #expect(try c.readLine() == "ok 0 0")
            #expect(try c.readLine().hasPrefix("ok dipc/1 "))
            // A burst of 200 pipelined reads and writes.
            var burst: [UInt8] = []
            for i in 0..<100 { burst += Array("w 0 \(String(i).utf8.count)\n\(i)r 0\n".utf8) }
            try c.send(burst)
            for i in 0..<100 {
                #expect(try c.readLine() == "ok \(i + 1)")
                let (d, v) = try c.readDataReply(request: "r 0")
                #expect(d == Array(String(i).utf8) && v == UInt64(i + 1))
            }
        }
    }

    @Test("bytes split one at a time", arguments: E2E.builtBackends)
    func splitBytes(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.sendSplit(Array("w 2 5\nhel\0o".utf8))
            #expect(try c.readLine() == "ok 1")
            try c.sendSplit(Array("r 2\r\n".utf8))
            #expect(try c.readLine() == "ok 5 1")
            #expect(try c.readBytes(5) == Array("hel\0o".utf8))
            try c.sendSplit(Array("w 2\r\nab\r\n".utf8))
            #expect(try c.readLine() == "ok 2")
            try c.sendSplit(Array("i\n".utf8))
            #expect(try c.readLine().hasPrefix("ok dipc/1 "))
            #expect(try c.read(2).data == Array("ab".utf8))
        }
    }

    @Test("`q` says bye and closes only that connection", arguments: E2E.builtBackends)
    func quit(backend: String) throws {
        try withServer(backend) { server, _ in
            let other = try server.connect()
            try other.write(0, "kept")
            for q in ["q", "q 5"] {
                let c = try server.connect()
                #expect(try c.request(q) == "bye", "\(q)")
                #expect(c.waitForClose() == .closed, "after \(q)")
            }
            #expect(try other.read(0).data == Array("kept".utf8), "other connection after q")
            #expect(try server.connect().request("r 0").hasPrefix("ok 4 1"), "new connection after q")
            #expect(server.isAlive)
        }
    }

    @Test("`s` reports counters", arguments: E2E.builtBackends)
    func stats(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.write(1, "abc")
            _ = try c.read(1)
            _ = try c.request("r 9")
            let line = try c.request("s")
            #expect(line.hasPrefix("ok "), "s -> \(line)")
            let f = keyValues(line)
            for key in ["connections", "accepted", "rejected", "reads", "writes", "pushes", "takes", "errors",
                "bytes_in", "bytes_out", "uptime_s"]
            {
                #expect(f[key].flatMap { UInt64($0) } != nil, "`s` lacks numeric `\(key)`: \(line)")
            }
            #expect((f["connections"].flatMap { Int($0) } ?? 0) >= 1, "s -> \(line)")
            #expect((f["accepted"].flatMap { Int($0) } ?? 0) >= 1, "s -> \(line)")
            #expect((f["reads"].flatMap { Int($0) } ?? 0) >= 1, "s -> \(line)")
            #expect((f["writes"].flatMap { Int($0) } ?? 0) >= 1, "s -> \(line)")
            #expect((f["errors"].flatMap { Int($0) } ?? 0) >= 1, "s -> \(line)")
            #expect((f["bytes_in"].flatMap { Int($0) } ?? 0) >= 12, "s -> \(line)")
        }
    }

    @Test("numbers with leading zeros are plain decimal digits", arguments: E2E.builtBackends)
    func leadingZeros(backend: String) throws {
        try withServer(backend) { server, _ in
            let c = try server.connect()
            try c.send("w 01 003\nabc")
            #expect(try c.readLine() == "ok 1", "w 01 003")
            #expect(try c.request("r 001") == "ok 3 1", "r 001")
            #expect(try c.readBytes(3) == Array("abc".utf8))
        }
    }
}
