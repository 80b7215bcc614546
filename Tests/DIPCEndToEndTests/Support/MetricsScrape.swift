import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One HTTP response from a `dipc --metrics` endpoint.
struct HTTPResponse {
    /// `200`, `404`, ...
    let status: Int
    /// Header names lowercased.
    let headers: [String: String]
    let body: String
}

/// Sends `METHOD PATH HTTP/1.1` to 127.0.0.1:`port` and reads the response until the
/// server closes (it always does: one response per connection). Every read has a deadline.
func httpRequest(port: Int, method: String = "GET", path: String = "/metrics",
                 timeout: Double = E2E.replyTimeout) throws -> HTTPResponse {
    let connection = try Conn(port: port, timeout: timeout)
    defer { connection.close() }
    try connection.send("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: dipc-e2e\r\n\r\n")
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    let deadline = monotonicNow() + timeout
    while true {
        var pfd = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
        let left = deadline - monotonicNow()
        guard left > 0 else { throw E2EError("no complete HTTP response from port \(port) within \(timeout) s; got \(bytes.count) bytes") }
        if poll(&pfd, 1, Int32(left * 1000) + 1) <= 0 { continue }
        let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw E2EError("not an HTTP response: \(text)") }
    let head = text[..<split.lowerBound].components(separatedBy: "\r\n")
    let statusWords = head[0].split(separator: " ")
    guard statusWords.count >= 2, statusWords[0] == "HTTP/1.1", let status = Int(statusWords[1]) else {
        throw E2EError("bad status line: \(head[0])")
    }
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { throw E2EError("bad header line: \(line)") }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPResponse(status: status, headers: headers, body: String(text[split.upperBound...]))
}

/// The samples of a Prometheus text page, keyed `name{label="value",…}` exactly as the
/// page writes them (the server writes labels in a fixed order per series), or `name`.
/// For the tests' exact-value checks; `PrometheusParser` is the strict format check.
func metricSamples(_ page: String) -> [String: Double] {
    var samples: [String: Double] = [:]
    for line in page.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        samples[String(line[..<space])] = value
    }
    return samples
}

/// The strict check: Python's `prometheus_client` parser (Debian package
/// python3-prometheus-client, which `make deps` installs) for the system Python.
enum PrometheusParser {
    static let python = "/usr/bin/python3"

    /// Why the parser cannot run here, or nil when it can.
    static var unavailable: String? {
        guard FileManager.default.isExecutableFile(atPath: python) else { return "\(python) is missing (Debian package python3)" }
        guard let r = try? runProcess(python, ["-c", "import prometheus_client.parser"], env: [:], timeout: 30), r.status == 0 else {
            return "\(python) cannot import prometheus_client (Debian package python3-prometheus-client; `make deps` installs it)"
        }
        return nil
    }

    /// Parses `page` with `text_string_to_metric_families`; returns each family as
    /// `NAME TYPE SAMPLES` lines, or throws with the parser's error.
    static func families(of page: String) throws -> [String] {
        let script = """
            from sys import stdin
            from prometheus_client.parser import text_string_to_metric_families
            for family in text_string_to_metric_families(stdin.read()):
                print(family.name, family.type, len(family.samples))
            """
        let r = try runProcess(python, ["-c", script], env: [:], stdin: Array(page.utf8), timeout: 30)
        guard r.status == 0 else { throw E2EError("prometheus_client rejected the page: \(r.err)") }
        return r.out.split(separator: "\n").map(String.init)
    }
}
