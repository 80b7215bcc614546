import CDIPCShims
import DIPCCore
import Glibc

/// The `--metrics` HTTP endpoint: `GET /metrics` (or `HEAD`) answers `200` with the
/// page `render` makes (Prometheus text format 0.0.4); any other path `404`, any other
/// method `405`, a malformed request `400`, a request head over `maximumRequestBytes`
/// `431`. One response per connection (`Connection: close`).
///
/// A minimal responder on the project's own sockets, not an HTTP server package
/// (docs/ARCHITECTURE.md says why): one thread serving one connection at a time, each
/// request head read within `ioTimeoutSeconds` and capped in size, so a slow or hostile
/// scraper costs at most one thread, one socket and `maximumRequestBytes` of memory,
/// and delays other scrapes by at most `ioTimeoutSeconds`.
final class MetricsEndpoint: @unchecked Sendable {
    /// Largest request head (request line and headers) read.
    static let maximumRequestBytes = 8192

    private let listener: ListeningSocket
    private let ioTimeoutSeconds: Int
    private let render: @Sendable () -> [UInt8]
    private let closer: LingeringCloser
    /// Readable once `stop` has begun.
    private let stopReadFD: Int32
    private let stopWriteFD: Int32
    private var thread: pthread_t?

    /// An endpoint answering on `listener` (bound and listening; stays the caller's to
    /// close after `stop`). Final responses are closed through `closer`.
    init(listener: ListeningSocket, ioTimeoutSeconds: Int, closer: LingeringCloser,
         render: @escaping @Sendable () -> [UInt8]) throws {
        self.listener = listener
        self.ioTimeoutSeconds = ioTimeoutSeconds
        self.closer = closer
        self.render = render
        var fds: [Int32] = [0, 0]
        try systemCall("pipe2") { cdipc_pipe_cloexec(&fds) }
        stopReadFD = fds[0]
        stopWriteFD = fds[1]
        // Non-blocking, so that a client gone between poll and accept cannot block the thread.
        do {
            let flags = try systemCall("fcntl(F_GETFL)") { fcntl(listener.fd, F_GETFL) }
            try systemCall("fcntl(F_SETFL)") { fcntl(listener.fd, F_SETFL, flags | O_NONBLOCK) }
        } catch {
            closeDescriptor(stopReadFD)
            closeDescriptor(stopWriteFD)
            throw error
        }
    }

    deinit {
        closeDescriptor(stopReadFD)
        closeDescriptor(stopWriteFD)
    }

    /// Starts the endpoint's thread. Call once.
    func start() throws {
        thread = try startJoinableThread(name: "dipc-metrics") { [self] in run() }
    }

    /// Ends the thread (a response in progress is cut short) and waits for it. Call once,
    /// after `start`.
    func stop() {
        var byte: UInt8 = 1
        // The pipe is empty until now and written once, so the write cannot block or
        // fail but through a bug (a closed descriptor), which traps.
        do { try systemCall("write(metrics stop pipe)") { write(stopWriteFD, &byte, 1) } } catch { preconditionFailure("\(error)") }
        if let thread {
            errnoReturningCallOrTrap("pthread_join") { pthread_join(thread, nil) }
        }
        thread = nil
    }

    private func run() {
        while true {
            switch wait(for: listener.fd, until: .infinity) {
            case .stopping: return
            case .timedOut: continue
            case .ready: break
            }
            guard let fd = try? systemCall("accept", { cdipc_accept_cloexec(listener.fd) }) else { continue }
            guard (try? PlainSocketStream.configure(fd, isTCP: !listener.isUnixDomain, sendTimeoutSeconds: ioTimeoutSeconds)) != nil
            else {
                closeDescriptor(fd)
                continue
            }
            if serve(fd) { closer.close(fd) } else { closeDescriptor(fd) }
        }
    }

    private enum Readiness { case ready, timedOut, stopping }

    /// Waits until `fd` is readable, `deadline` (monotonic seconds) passes or a stop begins.
    private func wait(for fd: Int32, until deadline: Double) -> Readiness {
        while true {
            var fds = (pollfd(fd: fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: stopReadFD, events: Int16(POLLIN), revents: 0))
            if !deadline.isInfinite && deadline - monotonicSeconds() <= 0 { return .timedOut }
            let ready: Int32
            do {
                ready = try withUnsafeMutablePointer(to: &fds) { pointer in
                    try pointer.withMemoryRebound(to: pollfd.self, capacity: 2) { fds in
                        try systemCall("poll") { poll(fds, 2, SocketIO.pollTimeout(until: deadline)) }
                    }
                }
            } catch {
                return .ready  // let the next call report the error
            }
            if ready == 0 { continue }
            if fds.1.revents != 0 { return .stopping }
            if fds.0.revents != 0 { return .ready }
        }
    }

    /// Reads one request head from `fd` and answers it. Returns whether a response was
    /// sent (the socket then closes lingering), false when the client is gone, stalled
    /// past `ioTimeoutSeconds`, or a stop began.
    private func serve(_ fd: Int32) -> Bool {
        let deadline = monotonicSeconds() + Double(ioTimeoutSeconds)
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while MetricsEndpoint.headEnd(in: head) == nil {
            if head.count > MetricsEndpoint.maximumRequestBytes {
                return respond(fd, status: "431 Request Header Fields Too Large", body: Array("request head over \(MetricsEndpoint.maximumRequestBytes) bytes\n".utf8))
            }
            guard wait(for: fd, until: deadline) == .ready else { return false }
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { buffer in
                    try systemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
                }
            } catch let error as SystemError where error.errno == .wouldBlock {
                continue
            } catch {
                return false
            }
            if count == 0 { return false }
            head.append(contentsOf: chunk[0..<count])
        }
        return answer(fd, requestLine: MetricsEndpoint.requestLine(of: head))
    }

    /// The response to `requestLine` (`METHOD TARGET HTTP/1.x`).
    private func answer(_ fd: Int32, requestLine: [Substring]) -> Bool {
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/1.") else {
            return respond(fd, status: "400 Bad Request", body: Array("expected METHOD TARGET HTTP/1.x\n".utf8))
        }
        let method = requestLine[0]
        let path = requestLine[1].prefix { $0 != "?" }
        guard method == "GET" || method == "HEAD" else {
            return respond(fd, status: "405 Method Not Allowed", extraHeaders: "Allow: GET, HEAD\r\n",
                           body: Array("only GET and HEAD\n".utf8))
        }
        guard path == "/metrics" else {
            return respond(fd, status: "404 Not Found", body: Array("not found: the metrics are at /metrics\n".utf8),
                           headOnly: method == "HEAD")
        }
        return respond(fd, status: "200 OK", contentType: "text/plain; version=0.0.4; charset=utf-8",
                       body: render(), headOnly: method == "HEAD")
    }

    private func respond(_ fd: Int32, status: String, contentType: String = "text/plain; charset=utf-8",
                         extraHeaders: String = "", body: [UInt8], headOnly: Bool = false) -> Bool {
        var bytes = Array(("HTTP/1.1 \(status)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
            + "Connection: close\r\n\(extraHeaders)\r\n").utf8)
        if !headOnly { bytes += body }
        return bytes.withUnsafeBytes { SocketIO.sendAll(fd, $0, packetSize: 64 * 1024) }
    }

    /// The index just past the blank line ending a request head, or nil.
    static func headEnd(in bytes: [UInt8]) -> Int? {
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 0x0A {
                if bytes[index + 1] == 0x0A { return index + 2 }
                if bytes[index + 1] == 0x0D, index + 2 < bytes.count, bytes[index + 2] == 0x0A { return index + 3 }
            }
            index += 1
        }
        return nil
    }

    /// The request line's words (split on spaces), from a request head.
    static func requestLine(of head: [UInt8]) -> [Substring] {
        let end = head.firstIndex(of: 0x0A) ?? head.count
        let line = String(decoding: head[0..<end], as: UTF8.self)
        return line.hasSuffix("\r") ? line.dropLast().split(separator: " ", omittingEmptySubsequences: false)
            : line[...].split(separator: " ", omittingEmptySubsequences: false)
    }
}
