// libFuzzer target for the whole request handler: the server's own `Connection`
// (decoder, execution, replies, packets, flushing) serving one client over a socket
// pair, against a `SharedStore` on the in-memory backend. Built only when FUZZ is set
// (see Fuzz/README.md).
//
// The input is the byte stream a client sends, then EOF. Every input is served twice:
// by a server without a token, and by one with an `--auth-file` token, where the
// stream starts unauthenticated and goes through the auth gate (refusals, dropped
// data, a wrong token closing, and the requests after the right `a TOKEN`; the seed
// corpus holds the token). The replies are checked
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

/// The token of the server that requires one (also in Fuzz/Corpus/handler's `auth-*` seeds).
private let token = Array("fuzz-token-0123456789".utf8)

/// A server on its own in-memory store (its listener is bound but never accepts); with
/// `access`, a token is required.
private func makeServer(_ name: String, access: ServerAccess = .open) -> Server {
    let store = try! SharedStore.open(name: name, geometry: geometry, policy: .fifo) {
        try InMemoryBackend.open(name: name, geometry: geometry, create: true)!
    }
    let configuration = ServerConfiguration(
        bindAddress: "127.0.0.1", port: 0, packetSize: 1024, maxClients: 4, ioTimeoutSeconds: 30, backendName: "memory")
    let listener = try! ListeningSocket(address: "127.0.0.1", port: 0)
    return try! Server(configuration: configuration, listeners: [listener], store: store, storeGate: StoreGate(),
                       access: access, logger: Logger(label: "fuzz"))
}

/// Serves every input without a token.
private let openServer = makeServer("fuzz\(getpid())")

/// Serves every input with `token` required, read from an owner-only auth file as `dipc --auth-file` does.
private let guardedServer: Server = {
    let path = "/tmp/dipc-fuzz-token-\(getpid())"
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot write \(path)")
    _ = (token + [0x0A]).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    defer { unlink(path) }
    var access = ServerAccess.open
    access.secret = try! AuthenticationSecret(file: path)
    return makeServer("fuzzauth\(getpid())", access: access)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func handlerFuzzTarget(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    serve(input, on: openServer, requiredToken: nil)
    serve(input, on: guardedServer, requiredToken: token)
    return 0
}

/// Serves `input` on `server` and checks every reply against the model; `requiredToken`
/// is the server's token, when it requires one.
private func serve(_ input: [UInt8], on server: Server, requiredToken: [UInt8]?) {
    let expected = decode(input, requiredToken: requiredToken)
    guard expected.reduce(0, { $0 + $1.waitMilliseconds }) <= totalWaitMilliseconds else { return }

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
                return
            }
        case let .request(request):
            if !check(request, requiredToken: requiredToken, &model, &output) {
                precondition(output.atEnd, "bytes after the connection ended")
                return
            }
        }
    }
    precondition(output.atEnd, "replies beyond the requests: \(output.remainingCount) bytes")
}

/// A mailbox as the model sees it.
private struct MailboxModel {
    var messages: [[UInt8]]
    var version: UInt64
    var used: Int { messages.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count } }
}

/// Checks the reply to `request` and applies it to the model; false when the
/// connection ended (after `q`, a wrong token, or a waiting take abandoned).
private func check(_ request: Request, requiredToken: [UInt8]?, _ model: inout [MailboxModel], _ output: inout Reader) -> Bool {
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
    case let .authenticate(offered):
        guard let requiredToken else {
            // A server without --auth-file: `a` is refused and the connection stays open.
            expectLine(&output, "err auth no token is required")
            return true
        }
        guard offered == requiredToken else {
            let line = output.line()
            precondition(line.hasPrefix("err auth "), "a wrong token: \(line)")
            return false
        }
        expectLine(&output, "ok")
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

/// What the server should decode from `input`: with `requiredToken`, requests are
/// refused until an `a` with that token (after which they are decoded as usual), and a
/// wrong token ends the stream.
private func decode(_ input: [UInt8], requiredToken: [UInt8]?) -> [DecodeResult] {
    var decoder = RequestDecoder(mailboxes: geometry.mailboxes, mailboxSize: geometry.mailboxSize,
                                 requiresAuthentication: requiredToken != nil)
    decoder.append(input)
    var results: [DecodeResult] = []
    while let result = decoder.next() {
        results.append(result)
        if case let .failure(error) = result, error.closesConnection { break }
        if case .request(.quit) = result { break }
        if let requiredToken, case let .request(.authenticate(offered)) = result {
            guard offered == requiredToken else { break }
            decoder.authenticated()
        }
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
