@preconcurrency import Glibc
import CDIPCOpenSSL

/// The client side of one TLS connection for the load generator, over a connected
/// blocking socket: TLS 1.2 or later, the server verified against a CA file and
/// 127.0.0.1 (dipc and Redis alike, so that the comparison measures the servers).
final class BenchTLSSession {
    private let ssl: OpaquePointer

    /// Handshakes on `fd`.
    init(fd: Int32, caFile: String) throws {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw BenchError("SSL_CTX_new: \(Self.reasons())") }
        defer { SSL_CTX_free(context) }  // the session keeps its own reference
        guard cdipc_ssl_ctx_require_tls12(context) == 1, SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
            throw BenchError("TLS client setup with CA \(caFile): \(Self.reasons())")
        }
        cdipc_ssl_ctx_accept_eof_without_close_notify(context)
        cdipc_ssl_ctx_set_partial_writes(context)
        SSL_CTX_set_verify(context, cdipc_ssl_verify_peer, nil)
        guard let ssl = SSL_new(context) else { throw BenchError("SSL_new: \(Self.reasons())") }
        self.ssl = ssl
        guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") == 1, SSL_set_fd(ssl, fd) == 1 else {
            throw BenchError("TLS client setup: \(Self.reasons())")
        }
        guard SSL_connect(ssl) == 1 else { throw BenchError("TLS handshake: \(Self.reasons())") }
    }

    deinit { SSL_free(ssl) }

    /// Sends every byte (one record per 16 KiB).
    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let n = SSL_write(ssl, bytes.baseAddress! + offset, Int32(clamping: bytes.count - offset))
            guard n > 0 else { throw BenchError("TLS send: \(Self.reasons())") }
            offset += Int(n)
        }
    }

    /// Receives up to `capacity` bytes: at least one; throws at end of stream or on error.
    func receive(into destination: UnsafeMutableRawPointer, capacity: Int) throws -> Int {
        let n = SSL_read(ssl, destination, Int32(clamping: capacity))
        if n > 0 { return Int(n) }
        if SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN { throw BenchError("the server closed the TLS connection") }
        throw BenchError("TLS recv: \(Self.reasons())")
    }

    /// The negotiated protocol version and cipher, e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`.
    var description: String {
        let version = SSL_get_version(ssl).map { String(cString: $0) } ?? "?"
        let cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)).map { String(cString: $0) } ?? "?"
        return "\(version) \(cipher)"
    }

    /// Sends close_notify (best effort).
    func shutdown() {
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// OpenSSL's error queue as text (emptied).
    private static func reasons() -> String {
        var out: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            out.append(ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)")
        }
        return out.isEmpty ? "connection closed or reset" : out.joined(separator: "; ")
    }
}
