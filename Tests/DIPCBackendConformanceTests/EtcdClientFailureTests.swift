import DIPCCore
@testable import DIPCEtcd
import DIPCTestSupport
import Foundation
import Glibc
import Testing

/// What `EtcdClient` promises about a failed change (SPEC §4): `.notApplied` only when
/// no byte of the request left this process; a request that may have reached etcd is
/// `.outcomeUnknown`, so that the store resolves it instead of sending the change again.
@Suite("etcd client: failures classified by what was sent")
struct EtcdClientFailureTests {
    /// The case that applied a push twice across a cut link: the request goes out on a
    /// reused connection, which dies before any reply byte; libcurl resends it on a fresh
    /// connection, which is refused, and reports only "couldn't connect".
    @Test("a change whose reused connection dies after sending it is outcome unknown, not 'not applied'")
    func reusedConnectionDyingAfterTheRequest() throws {
        let server = try OneShotHTTPServer()
        let client = EtcdClient(endpoints: ["http://127.0.0.1:\(server.port)"])
        _ = try client.call("/v3/kv/range", ["key": "YQ=="], deadline: monotonicSeconds() + 5, idempotent: false)
        var thrown: (any Error)?
        do {
            _ = try client.call("/v3/kv/txn", ["compare": []], deadline: monotonicSeconds() + 2, idempotent: false)
        } catch {
            thrown = error
        }
        let requests = server.finish()
        try #require(requests.count == 2, "the fake etcd got \(requests.count) requests, not the two the test needs")
        #expect(requests[1].hasPrefix("POST /v3/kv/txn"), "the second request was \(requests[1].prefix(40))")
        let failure = try #require(thrown as? EtcdFailure, "expected an EtcdFailure, got \(String(describing: thrown))")
        guard case .outcomeUnknown = failure else {
            Issue.record("a change that reached the server was reported \(failure) (not applied), so it could be applied twice")
            return
        }
    }

    @Test("a change no endpoint accepted a connection for is 'not applied'")
    func refusedConnection() throws {
        let port = try LoopbackPort.free()
        let client = EtcdClient(endpoints: ["http://127.0.0.1:\(port)"])
        let failure = try #require(throws: EtcdFailure.self) {
            _ = try client.call("/v3/kv/txn", ["compare": []], deadline: monotonicSeconds() + 0.5, idempotent: false)
        }
        guard case .notApplied = failure else {
            Issue.record("a refused connection was reported \(failure)")
            return
        }
    }

    @Test("etcd's errors: a dropped proposal is not applied, a closing transport is unknown")
    func etcdErrorMessages() {
        func kind(_ message: String) -> String {
            switch EtcdClient.classify(etcdError: message) {
            case .notApplied: return "notApplied"
            case .outcomeUnknown: return "outcomeUnknown"
            case .rejected: return "rejected"
            }
        }
        #expect(kind("etcdserver: no leader") == "notApplied")
        #expect(kind("raft proposal dropped") == "notApplied")
        #expect(kind("etcdserver: request timed out") == "outcomeUnknown")
        #expect(kind("etcdserver: leader changed") == "outcomeUnknown")
        #expect(kind("rpc error: code = Unavailable desc = transport is closing") == "outcomeUnknown")
        #expect(kind("etcdserver: request is too large") == "rejected")
    }
}

/// A fake etcd gateway on a loopback port: it answers the first HTTP request on its one
/// connection with `{}`, reads the second whole, then closes its listening socket and
/// that connection without replying. `finish()` joins it and returns the request lines
/// and bodies it read.
private final class OneShotHTTPServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private var thread: SpawnedThread<[String]>!

    init() throws {
        (listener, port) = try LoopbackPort.listen(backlog: 8)
        thread = SpawnedThread { [listener] in Self.serve(listener) }
    }

    func finish() -> [String] { thread.join() }

    private static func serve(_ listener: Int32) -> [String] {
        var requests: [String] = []
        var closedListener = false
        defer { if !closedListener { close(listener) } }
        var pending = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&pending, 1, 10_000) == 1 else { return requests }
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { return requests }
        defer { close(connection) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        for index in 0..<2 {
            guard let request = readRequest(connection, &buffer) else { return requests }
            requests.append(request)
            if index == 0 {
                let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                _ = reply.withCString { send(connection, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
            }
        }
        // Refuse the fresh connection a client may retry on, then drop this one.
        close(listener)
        closedListener = true
        return requests
    }

    /// One whole request (head and `Content-Length` body) from `connection`, as text.
    private static func readRequest(_ connection: Int32, _ buffer: inout [UInt8]) -> String? {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        func headEnd() -> Int? {
            guard buffer.count >= 4 else { return nil }
            return (0...(buffer.count - 4)).first { Array(buffer[$0..<$0 + 4]) == separator }
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        func receive() -> Bool {
            let count = recv(connection, &chunk, chunk.count, 0)
            guard count > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        while headEnd() == nil { guard receive() else { return nil } }
        let end = headEnd()! + 4
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let lengthLine = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
        let length = lengthLine.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        while buffer.count < end + length { guard receive() else { return nil } }
        let request = String(decoding: buffer[0..<end + length], as: UTF8.self)
        buffer.removeFirst(end + length)
        return request
    }
}
