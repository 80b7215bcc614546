// libFuzzer target for the whole request handler: the server's own `Connection`
// (decoder, execution, replies, packets, flushing) serving one client over a socket
// pair, against a `SharedStore` on the in-memory backend. Built only when FUZZ is set
// (see Fuzz/README.md).
//
// The input is the byte stream a client sends, then EOF. The replies are checked
// against a model of the mailboxes driven by the same decoder: every reply must be
// the one SPEC §2 gives for the request, in order, and nothing may follow a reply
// that closes the connection. Requests that would wait longer than a few
// milliseconds in all are skipped (a single client cannot end a watch or a full push).
@preconcurrency import Glibc
import DIPCCore
import DIPCProtocol
@testable import DIPCServer
import DIPCTestSupport
import Logging

/// 4 mailboxes of 256 bytes, 1 KiB packets: small enough for the fuzzer to fill and empty.
private let geometry = StoreGeometry(mailboxes: 4, mailboxSize: 256)
/// Waiting requests sleep for real: inputs that could wait longer in all are skipped.
private let totalWaitMilliseconds = 2

/// One server for every input (its listener is bound but never accepts).
private let server: Server = {
    let store = try! SharedStore.open(name: "fuzz\(getpid())", geometry: geometry, policy: .fifo) {
        try InMemoryBackend.open(name: "fuzz\(getpid())", geometry: geometry, create: true)!
    }
    let configuration = ServerConfiguration(
        bindAddress: "127.0.0.1", port: 0, packetSize: 1024, maxClients: 4, ioTimeoutSeconds: 30, backendName: "memory")
    let listener = try! ListeningSocket(address: "127.0.0.1", port: 0)
    return try! Server(configuration: configuration, listener: listener, store: store, logger: Logger(label: "fuzz"))
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func handlerFuzzTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let expected = decode(input)
    guard expected.reduce(0, { $0 + $1.waitMilliseconds }) <= totalWaitMilliseconds else { return 0 }

    // A known start: every mailbox holds one empty message.
    var model = (0..<geometry.mailboxes).map { mailbox -> MailboxModel in
        let version = try! [UInt8]().withUnsafeBytes { try server.store.write(mailbox, $0) }
        return MailboxModel(messages: [[]], version: version)
    }

    var pair: [Int32] = [0, 0]
    precondition(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
    let client = pair[0]
    let replies = ReplyCollector.shared
    replies.start(client)
    _ = input.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    shutdown(client, Int32(SHUT_WR))
    server.statistics.connections.add(1)
    let stream = try! PlainSocketStream(fd: pair[1], isTCP: false, sendTimeoutSeconds: 30)
    Connection(stream: stream, server: server).run()  // closes pair[1]
    var output = Reader(bytes: replies.finish())
    close(client)

    for result in expected {
        switch result {
        case let .failure(error):
            let line = output.line()
            precondition(line.hasPrefix("err \(error.code.rawValue) "), "expected err \(error.code.rawValue), got \(line)")
            if error.closesConnection {
                precondition(output.atEnd, "bytes after a reply that closes the connection")
                return 0
            }
        case let .request(request):
            if !check(request, &model, &output) {
                precondition(output.atEnd, "bytes after the connection ended")
                return 0
            }
        }
    }
    precondition(output.atEnd, "replies beyond the requests: \(output.remainingCount) bytes")
    return 0
}

/// A mailbox as the model sees it.
private struct MailboxModel {
    var messages: [[UInt8]]
    var version: UInt64
    var used: Int { messages.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count } }
}

/// Checks the reply to `request` and applies it to the model; false when the
/// connection ended (after `q`, or a waiting take abandoned).
private func check(_ request: Request, _ model: inout [MailboxModel], _ output: inout Reader) -> Bool {
    switch request {
    case let .read(mailbox), let .watch(mailbox, _, _):
        expectValue(&output, model[mailbox].messages.last ?? [], version: model[mailbox].version)
    case let .write(mailbox, data):
        model[mailbox].messages = [data]
        model[mailbox].version += 1
        expectLine(&output, "ok \(model[mailbox].version)")
    case let .push(mailbox, data, wait):
        let fits = model[mailbox].used + StoreLayout.messageOverhead + data.count
            <= geometry.mailboxSize + StoreLayout.messageOverhead
        if fits {
            model[mailbox].messages.append(data)
            model[mailbox].version += 1
            expectLine(&output, "ok \(model[mailbox].version)")
        } else {
            // Like a take, a push that has to wait treats a half-closed client as gone: it
            // pushes nothing and the connection is dropped, unless its wait ran out first.
            if wait > 0 && output.atEnd { return false }
            let line = output.line()
            precondition(line.hasPrefix("err full "), "push of \(data.count) bytes (\(model[mailbox].used) used): \(line)")
        }
    case let .consume(mailbox, wait):
        if model[mailbox].messages.isEmpty {
            // A take that has to wait treats a half-closed client (as this one is) as gone:
            // it takes nothing and the connection is dropped, unless its wait ran out first.
            if wait > 0 && output.atEnd { return false }
            let line = output.line()
            precondition(line.hasPrefix("err empty "), "take from an empty mailbox: \(line)")
        } else {
            let oldest = model[mailbox].messages.removeFirst()
            model[mailbox].version += 1
            expectValue(&output, oldest, version: model[mailbox].version)
        }
    case .quit:
        expectLine(&output, "bye")
        return false
    case .info:
        let line = output.line()
        precondition(line.hasPrefix("ok dipc/1 ") && line.contains(" mailboxes=4 "), "i: \(line)")
    case .stats:
        let line = output.line()
        precondition(line.hasPrefix("ok connections="), "s: \(line)")
    case .authenticate:
        // This server has no --auth-file: `a` is refused and the connection stays open.
        expectLine(&output, "err auth no token is required")
    }
    return true
}

private func expectLine(_ output: inout Reader, _ expected: String) {
    let line = output.line()
    precondition(line == expected, "expected \(expected), got \(line)")
}

private func expectValue(_ output: inout Reader, _ value: [UInt8], version: UInt64) {
    expectLine(&output, "ok \(value.count) \(version)")
    precondition(output.bytes(value.count) == value, "value differs")
}

private func decode(_ input: [UInt8]) -> [DecodeResult] {
    var decoder = RequestDecoder(mailboxes: geometry.mailboxes, mailboxSize: geometry.mailboxSize)
    decoder.append(input)
    var results: [DecodeResult] = []
    while let result = decoder.next() {
        results.append(result)
        if case let .failure(error) = result, error.closesConnection { break }
        if case .request(.quit) = result { break }
    }
    return results
}

extension DecodeResult {
    fileprivate var waitMilliseconds: Int {
        switch self {
        case let .request(.watch(_, _, wait)), let .request(.push(_, _, wait)), let .request(.consume(_, wait)): return wait
        default: return 0
        }
    }
}

/// The reply bytes, consumed in order.
private struct Reader {
    let bytes: [UInt8]
    var offset = 0
    var atEnd: Bool { offset == bytes.count }
    var remainingCount: Int { bytes.count - offset }

    mutating func line() -> String {
        guard let newline = bytes[offset...].firstIndex(of: UInt8(ascii: "\n")) else {
            preconditionFailure("a reply line is missing (\(remainingCount) bytes left)")
        }
        defer { offset = newline + 1 }
        return String(decoding: bytes[offset..<newline], as: UTF8.self)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        precondition(remainingCount >= count, "a value is cut short")
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }
}

/// Reads a client end until EOF on its own thread, so the server never blocks on a
/// full socket. One thread serves every input (a thread per input is slow under ASan).
private final class ReplyCollector: @unchecked Sendable {
    static let shared: ReplyCollector = {
        let collector = ReplyCollector()
        var thread = pthread_t()
        let context = Unmanaged.passRetained(collector).toOpaque()
        precondition(pthread_create(&thread, nil, { raw in
            Unmanaged<ReplyCollector>.fromOpaque(raw!).takeRetainedValue().loop()
        }, context) == 0)
        return collector
    }()

    private var fd: Int32 = -1
    private var collected: [UInt8] = []
    private var started = sem_t()
    private var finished = sem_t()

    private init() {
        sem_init(&started, 0, 0)
        sem_init(&finished, 0, 0)
    }

    /// Starts collecting what arrives on `fd`.
    func start(_ fd: Int32) {
        self.fd = fd
        collected = []
        sem_post(&started)
    }

    /// Waits for EOF; the bytes received.
    func finish() -> [UInt8] {
        while sem_wait(&finished) != 0 {}
        return collected
    }

    private func loop() -> Never {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            while sem_wait(&started) != 0 {}
            while true {
                let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                collected += chunk[0..<count]
            }
            sem_post(&finished)
        }
    }
}
