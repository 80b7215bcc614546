import Glibc
import Testing
@testable import DIPCClient

/// Runs `body` against a fake server playing `script`, then checks the script went as written.
func withFakeServer<T>(
    _ script: [FakeServer.Step], ipv6: Bool = false, timeout: Double = 5,
    _ body: (DIPCConnection) throws -> T, sourceLocation: SourceLocation = #_sourceLocation
) throws -> T {
    let server = try FakeServer(script, ipv6: ipv6)
    let result: Result<T, any Error>
    do {
        let connection = try DIPCConnection(host: ipv6 ? "::1" : "127.0.0.1", port: server.port, timeoutSeconds: timeout)
        result = Result { try body(connection) }
        connection.close()
    }
    #expect(server.finish() == [], sourceLocation: sourceLocation)
    return try result.get()
}

/// The `DIPCClientError` that `body` throws (fails the test if it throws none or another).
func clientError(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> DIPCClientError? {
    do {
        try body()
        Issue.record("expected a DIPCClientError, got none", sourceLocation: sourceLocation)
    } catch let error as DIPCClientError {
        return error
    } catch {
        Issue.record("expected a DIPCClientError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

extension DIPCClientError {
    var isConnection: Bool { if case .connection = self { return true } else { return false } }
    var isProtocolViolation: Bool { if case .protocolViolation = self { return true } else { return false } }
}

@Suite("DIPCConnection against a scripted server")
struct ConnectionTests {
    @Test func readReturnsDataAndVersion() throws {
        let message = try withFakeServer([.expect("r 3\n"), .send("ok 5 7\nhello")]) { try $0.read(3) }
        #expect(message == Message(data: Array("hello".utf8), version: 7))
    }

    @Test func readOfNeverWrittenMailboxIsEmpty() throws {
        let message = try withFakeServer([.expect("r 0\n"), .send("ok 0 0\n")]) { try $0.read(0) }
        #expect(message == Message(data: [], version: 0))
    }

    @Test func readDataMayContainNewlinesAndZeros() throws {
        let data: [UInt8] = [0, 10, 13, 10, 255, 0, 101, 114, 114, 32]
        let message = try withFakeServer([.expect("r 1\n"), .sendBytes(Array("ok 10 2\n".utf8) + data)]) { try $0.read(1) }
        #expect(message.data == data)
    }

    @Test func writeSendsHeaderAndDataAndReturnsVersion() throws {
        let data: [UInt8] = Array("two\nlines\r\n".utf8) + [0]
        let version = try withFakeServer([.expectBytes(Array("w 2 12\n".utf8) + data), .send("ok 8\n")]) {
            try $0.write(2, data)
        }
        #expect(version == 8)
    }

    @Test func writeOfEmptyValue() throws {
        let version = try withFakeServer([.expect("w 0 0\n"), .send("ok 1\n")]) { try $0.write(0, []) }
        #expect(version == 1)
    }

    @Test func largeWriteAndReadRoundTrip() throws {
        let data = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let message = try withFakeServer([
            .expectBytes(Array("w 5 300000\n".utf8) + data), .send("ok 2\n"),
            .expect("r 5\n"), .sendBytes(Array("ok 300000 2\n".utf8) + data),
        ]) { connection in
            #expect(try connection.write(5, data) == 2)
            return try connection.read(5)
        }
        #expect(message == Message(data: data, version: 2))
    }

    @Test func replySplitAcrossSeveralSends() throws {
        let message = try withFakeServer([
            .expect("r 4\n"),
            .send("ok 1"), .pause(milliseconds: 30),
            .send("1 4\nhel"), .pause(milliseconds: 30),
            .send("lo wor"), .pause(milliseconds: 30),
            .send("ld"),
        ]) { try $0.read(4) }
        #expect(message == Message(data: Array("hello world".utf8), version: 4))
    }

    @Test func twoRepliesInOneSendAreBufferedInOrder() throws {
        let (first, second) = try withFakeServer([
            .expect("r 0\n"), .send("ok 1 1\nAok 2 9\nBC"), .expect("r 1\n"),
        ]) { connection in (try connection.read(0), try connection.read(1)) }
        #expect(first == Message(data: [UInt8(ascii: "A")], version: 1))
        #expect(second == Message(data: Array("BC".utf8), version: 9))
    }

    @Test func crlfRepliesAreAccepted() throws {
        let version = try withFakeServer([.expect("w 1 2\nhi"), .send("ok 3\r\n")]) { try $0.write(1, Array("hi".utf8)) }
        #expect(version == 3)
    }

    @Test func infoParsesKeyValuePairsInOrder() throws {
        let line = "ok dipc/1 backend=sysv name=port7070 mailboxes=4 mailbox_size=1024 packet_size=512 coordinator=fifo\n"
        let (dictionary, pairs) = try withFakeServer([.expect("i\n"), .send(line), .expect("i\n"), .send(line)]) {
            (try $0.info(), try $0.infoPairs())
        }
        #expect(dictionary == [
            "backend": "sysv", "name": "port7070", "mailboxes": "4", "mailbox_size": "1024",
            "packet_size": "512", "coordinator": "fifo",
        ])
        #expect(pairs.map(\.key) == ["backend", "name", "mailboxes", "mailbox_size", "packet_size", "coordinator"])
    }

    @Test func infoWithoutBannerIsAProtocolViolation() throws {
        let error = try withFakeServer([.expect("i\n"), .send("ok backend=sysv\n")]) { connection in
            clientError { _ = try connection.info() }
        }
        #expect(error?.isProtocolViolation == true)
    }

    @Test func statsParsesCounters() throws {
        let stats = try withFakeServer([.expect("s\n"), .send("ok connections=1 accepted=3 reads=10 empty=\n")]) {
            try $0.stats()
        }
        #expect(stats == ["connections": "1", "accepted": "3", "reads": "10", "empty": ""])
    }

    @Test func serverErrorIsMappedAndConnectionStaysUsable() throws {
        let (error, message) = try withFakeServer([
            .expect("r 9\n"), .send("err range mailbox 9 is out of range (0-3)\n"),
            .expect("r 1\n"), .send("ok 1 1\nx"),
        ]) { connection in
            (clientError { _ = try connection.read(9) }, try connection.read(1))
        }
        #expect(error == .server(code: "range", message: "mailbox 9 is out of range (0-3)"))
        #expect(error?.description == "server error range: mailbox 9 is out of range (0-3)")
        #expect(message.data == Array("x".utf8))
    }

    @Test func errorWithoutMessage() throws {
        let error = try withFakeServer([.expect("c 0\n"), .send("err empty\n")]) { connection in
            clientError { _ = try connection.consume(0) }
        }
        #expect(error == .server(code: "empty", message: ""))
    }

    @Test func errorAfterWhichTheServerClosesClosesTheConnection() throws {
        let (first, second, open) = try withFakeServer([
            .expect("w 0 3\nabc"), .send("err size 3 bytes do not fit\n"), .close,
        ]) { connection in
            let first = clientError { _ = try connection.write(0, Array("abc".utf8)) }
            let second = clientError { _ = try connection.read(0) }
            return (first, second, connection.isOpen)
        }
        #expect(first == .server(code: "size", message: "3 bytes do not fit"))
        #expect(second?.isConnection == true)
        #expect(second?.description.contains("connection is closed") == true)
        #expect(!open)
    }

    /// Connects to a fake server that sends `err busy` and closes, and waits until it
    /// has closed (its thread joined) before `body` runs.
    private func afterBusyGreeting<T>(_ body: (DIPCConnection) throws -> T) throws -> T {
        let server = try FakeServer([.send("err busy server has 256 clients\n"), .close])
        let connection = try DIPCConnection(host: "127.0.0.1", port: server.port, timeoutSeconds: 5)
        defer { connection.close() }
        #expect(server.finish() == [])
        return try body(connection)
    }

    @Test func busyGreetingIsReportedAsServerError() throws {
        let error = try afterBusyGreeting { connection in
            clientError { _ = try connection.read(0) }
        }
        #expect(error == .server(code: "busy", message: "server has 256 clients"))
    }

    @Test func busyGreetingIsReportedEvenWhenTheSendFails() throws {
        let (error, open) = try afterBusyGreeting { connection in
            // The server has closed: this send is answered with a reset, and a later send fails.
            try connection.sendRaw(Array("r 0\n".utf8))
            return (clientError { _ = try connection.read(0) }, connection.isOpen)
        }
        #expect(error == .server(code: "busy", message: "server has 256 clients"))
        #expect(!open)
    }

    @Test func connectionRefused() throws {
        let (fd, port) = try refusingPort()
        defer { Glibc.close(fd) }
        let error = clientError { _ = try DIPCConnection(port: port) }
        #expect(error?.isConnection == true)
        #expect(error?.description.contains("connect to 127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("Connection refused") == true)
    }

    @Test func invalidPortIsAConnectionError() {
        let error = clientError { _ = try DIPCConnection(port: 70000) }
        #expect(error?.isConnection == true)
    }

    @Test func closedInTheMiddleOfData() throws {
        let (error, open) = try withFakeServer([.expect("r 0\n"), .send("ok 10 1\nhel"), .close]) { connection in
            (clientError { _ = try connection.read(0) }, connection.isOpen)
        }
        #expect(error?.isConnection == true)
        #expect(error?.description.contains("closed by the server in the middle of a reply") == true)
        #expect(error?.description.contains("3 of 10") == true)
        #expect(!open)
    }

    @Test func closedInTheMiddleOfAHeaderLine() throws {
        let error = try withFakeServer([.expect("r 0\n"), .send("ok 10"), .close]) { connection in
            clientError { _ = try connection.read(0) }
        }
        #expect(error?.isConnection == true)
        #expect(error?.description.contains("in the middle of a reply") == true)
    }

    @Test func closedBeforeAnyReply() throws {
        let error = try withFakeServer([.expect("r 0\n"), .close]) { connection in
            clientError { _ = try connection.read(0) }
        }
        #expect(error?.isConnection == true)
        #expect(error?.description.contains("recv from 127.0.0.1:") == true)
    }

    @Test func silentServerTimesOut() throws {
        let error = try withFakeServer([.expect("r 0\n"), .expectEOF], timeout: 0.3) { connection in
            clientError { _ = try connection.read(0) }
        }
        #expect(error?.isConnection == true)
        #expect(error?.description.contains("timed out after 0.3 s") == true)
    }

    @Test func waitingRequestsExtendTheReceiveTimeout() throws {
        // The reply comes after 500 ms, past the 0.3 s timeout but within timeout + wait.
        let message = try withFakeServer(
            [.expect("r 1 5 1000\n"), .pause(milliseconds: 500), .send("ok 1 6\nz")], timeout: 0.3
        ) { try $0.watch(1, after: 5, waitMilliseconds: 1000) }
        #expect(message == Message(data: [UInt8(ascii: "z")], version: 6))
    }

    @Test func unexpectedReplyIsAProtocolViolationAndCloses() throws {
        let (error, open) = try withFakeServer([.expect("w 0 1\nx"), .send("ok 1 2\n")]) { connection in
            (clientError { _ = try connection.write(0, [UInt8(ascii: "x")]) }, connection.isOpen)
        }
        #expect(error?.isProtocolViolation == true)
        #expect(error?.description.contains("expected 'ok VERSION'") == true)
        #expect(!open)
    }

    @Test func nonDecimalNumbersAreProtocolViolations() throws {
        for bad in ["ok +5 1\n", "ok 5 -1\n", "ok 5 18446744073709551616\n", "ok 5\n", "okay 0 0\n"] {
            let error = try withFakeServer([.expect("r 0\n"), .send(bad)]) { connection in
                clientError { _ = try connection.read(0) }
            }
            #expect(error?.isProtocolViolation == true, "\(bad)")
        }
    }

    @Test func overlongReplyLineIsAProtocolViolation() throws {
        let error = try withFakeServer([.expect("s\n"), .send("ok " + String(repeating: "a=b ", count: 20_000)), .expectEOF]) {
            connection in clientError { _ = try connection.stats() }
        }
        #expect(error?.isProtocolViolation == true)
    }

    @Test func pushAndConsumeRequests() throws {
        let (v1, v2, taken, empty) = try withFakeServer([
            .expect("p 1 3\nabc"), .send("ok 1\n"),
            .expect("p 1 2 250\nde"), .send("ok 2\n"),
            .expect("c 1 10\n"), .send("ok 3 3\nabc"),
            .expect("c 1\n"), .send("err empty no message\n"),
        ]) { connection in
            (
                try connection.push(1, Array("abc".utf8)),
                try connection.push(1, Array("de".utf8), waitMilliseconds: 250),
                try connection.consume(1, waitMilliseconds: 10),
                clientError { _ = try connection.consume(1) }
            )
        }
        #expect(v1 == 1 && v2 == 2)
        #expect(taken == Message(data: Array("abc".utf8), version: 3))
        #expect(empty == .server(code: "empty", message: "no message"))
    }

    @Test func pushFullIsAServerError() throws {
        let error = try withFakeServer([.expect("p 0 1 5\nx"), .send("err full no room\n")]) { connection in
            clientError { _ = try connection.push(0, [UInt8(ascii: "x")], waitMilliseconds: 5) }
        }
        #expect(error == .server(code: "full", message: "no room"))
    }

    @Test func quitExpectsByeAndCloses() throws {
        let open = try withFakeServer([.expect("q\n"), .send("bye\n"), .close]) { connection in
            try connection.quit()
            return connection.isOpen
        }
        #expect(!open)
    }

    @Test func rawAccessForTheNetcatForm() throws {
        let (line, bytes) = try withFakeServer([.expect("w 1\nhi there\n"), .send("ok 4\r\nxyz")]) { connection in
            try connection.sendRaw(Array("w 1\nhi there\n".utf8))
            return (try connection.readLine(), try connection.readExactly(3))
        }
        #expect(line == "ok 4")
        #expect(bytes == Array("xyz".utf8))
    }

    // Skipped loudly (in the report and on stderr) where ::1 cannot be bound: never a silent pass.
    @Test(.enabled("SKIPPED: needs an IPv6 loopback (::1 could not be bound)") {
        if FakeServer.ipv6LoopbackAvailable { return true }
        let line = "SKIPPED: connectsOverIPv6 needs an IPv6 loopback (::1 could not be bound)\n"
        _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        return false
    })
    func connectsOverIPv6() throws {
        let message = try withFakeServer([.expect("r 2\n"), .send("ok 2 1\nv6")], ipv6: true) { try $0.read(2) }
        #expect(message.data == Array("v6".utf8))
    }
}
