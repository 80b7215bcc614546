import CCurl
import Foundation

/// libcurl's process-wide set-up, done once before the first handle.
enum Curl {
    static let initialize: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()
}

/// One libcurl easy handle, used by one thread at a time: a POST with a JSON body, either
/// collected whole (`post`) or streamed line by line (`stream`). The handle keeps its
/// connections open between calls.
final class CurlHandle: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer

    init() {
        Curl.initialize
        guard let made = curl_easy_init() else { fatalError("curl_easy_init failed (out of memory)") }
        handle = made
    }

    deinit { curl_easy_cleanup(handle) }

    /// POSTs `body` to `url` within `timeout` seconds; the HTTP status and body, or why
    /// no reply came: `.notApplied` only when no byte of the request was sent, else
    /// `.outcomeUnknown`.
    ///
    /// A failed connect does not prove that: when a reused connection dies before any
    /// reply byte, libcurl silently sends the request again on a fresh connection, and
    /// reports only that second connect's failure, although the first copy may have
    /// reached etcd and been applied (seen here: a push applied twice across a cut link).
    /// `CURLINFO_REQUEST_SIZE` (reset by each perform) tells whether any copy was sent.
    func post(_ url: String, _ body: Data, timeout: Double, headers: [String]) -> Result<(Int, Data), EtcdFailure> {
        let sink = Sink()
        let code = perform(url, body, headers: headers, sink: sink) {
            _ = dipc_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, max(1, Int(timeout * 1000)))
        }
        guard code == CURLE_OK else {
            var sent = 0
            _ = dipc_curl_getinfo_long(handle, CURLINFO_REQUEST_SIZE, &sent)
            return .failure(Self.failure(code, requestBytesSent: sent))
        }
        var status = 0
        _ = dipc_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success((status, sink.data))
    }

    /// POSTs `body` to `url` and hands each line of the reply to `line` as it arrives,
    /// until the server ends it, `shouldStop` returns true (asked several times a
    /// second), or nothing arrives for `idleSeconds`. Returns the HTTP status (0 if none).
    func stream(_ url: String, _ body: Data, headers: [String], idleSeconds: Int,
                shouldStop: @escaping () -> Bool, line: @escaping (Data) -> Void) -> Int {
        let sink = Sink(line: line, shouldStop: shouldStop)
        _ = perform(url, body, headers: headers, sink: sink) {
            _ = dipc_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, 0)
            _ = dipc_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
            _ = dipc_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, idleSeconds)
            _ = dipc_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
            _ = dipc_curl_setopt_progress_function(handle) { context, _, _, _, _ in
                Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue().shouldStop?() == true ? 1 : 0
            }
            _ = dipc_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, Unmanaged.passUnretained(sink).toOpaque())
        }
        var status = 0
        _ = dipc_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    /// Resets the handle (its connections stay open), sets up a POST, runs `configure`
    /// for the rest and performs it. The response code stays readable until the next call.
    private func perform(_ url: String, _ body: Data, headers: [String], sink: Sink, configure: () -> Void) -> CURLcode {
        curl_easy_reset(handle)
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        _ = dipc_curl_setopt_string(handle, CURLOPT_URL, url)
        _ = dipc_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = dipc_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
        body.withUnsafeBytes { bytes in
            _ = dipc_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
        }
        _ = dipc_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        _ = dipc_curl_setopt_long(handle, CURLOPT_TCP_NODELAY, 1)
        _ = dipc_curl_setopt_data_function(handle, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if let data { sink.receive(UnsafeRawBufferPointer(start: data, count: length)) }
            return sink.shouldStop?() == true ? 0 : length
        }
        _ = dipc_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, Unmanaged.passUnretained(sink).toOpaque())
        configure()
        return withExtendedLifetime(sink) { curl_easy_perform(handle) }
    }

    /// A failed transfer: not applied when it never connected and sent nothing.
    static func failure(_ code: CURLcode, requestBytesSent: Int) -> EtcdFailure {
        let reason = String(cString: curl_easy_strerror(code))
        if requestBytesSent > 0 {
            return .outcomeUnknown("curl: \(reason), after \(requestBytesSent) request bytes were sent")
        }
        switch code {
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_URL_MALFORMAT,
             CURLE_UNSUPPORTED_PROTOCOL:
            return .notApplied("curl: \(reason)")
        default:
            return .outcomeUnknown("curl: \(reason)")
        }
    }

    /// Where a transfer's bytes go: collected, or split into lines for `line`.
    private final class Sink {
        var data = Data()
        let line: ((Data) -> Void)?
        let shouldStop: (() -> Bool)?

        init(line: ((Data) -> Void)? = nil, shouldStop: (() -> Bool)? = nil) {
            self.line = line
            self.shouldStop = shouldStop
        }

        func receive(_ bytes: UnsafeRawBufferPointer) {
            data.append(contentsOf: bytes)
            guard let line else { return }
            while let newline = data.firstIndex(of: 0x0A) {
                let one = data[data.startIndex..<newline]
                data.removeSubrange(data.startIndex...newline)
                if !one.isEmpty { line(Data(one)) }
            }
        }
    }
}
