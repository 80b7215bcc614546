import CDIPCOpenSSL
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The client side of a TLS connection for `Conn`, over its connected socket: TLS 1.2
/// or later, the server's certificate verified against a CA file and against
/// 127.0.0.1. Raw bytes go through it unchanged, so hostile input can be sent over TLS.
final class TestTLSSession {
    private let ssl: OpaquePointer
    private let fd: Int32

    /// Handshakes on `fd` (blocking; its receive and send timeouts bound the handshake).
    init(fd: Int32, caFile: String) throws {
        self.fd = fd
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw E2EError("SSL_CTX_new: \(Self.reasons())") }
        defer { SSL_CTX_free(context) }  // the session keeps its own reference
        guard cdipc_ssl_ctx_require_tls12(context) == 1,
              SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
            throw E2EError("TLS client setup with CA \(caFile): \(Self.reasons())")
        }
        cdipc_ssl_ctx_accept_eof_without_close_notify(context)
        SSL_CTX_set_verify(context, cdipc_ssl_verify_peer, nil)
        guard let ssl = SSL_new(context) else { throw E2EError("SSL_new: \(Self.reasons())") }
        self.ssl = ssl
        guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1") == 1, SSL_set_fd(ssl, fd) == 1 else {
            throw E2EError("TLS client setup: \(Self.reasons())")
        }
        guard SSL_connect(ssl) == 1 else {
            throw E2EError("TLS handshake failed (verify result \(SSL_get_verify_result(ssl))): \(Self.reasons())")
        }
    }

    deinit { SSL_free(ssl) }

    /// Decrypted bytes that a read returns without touching the socket.
    var pending: Int { Int(SSL_pending(ssl)) }

    /// Sends up to `count` bytes from `bytes` as TLS records; the count sent.
    func write(_ bytes: UnsafeRawPointer, count: Int) throws -> Int {
        let n = SSL_write(ssl, bytes, Int32(clamping: count))
        guard n > 0 else { throw E2EError("TLS send failed (SSL error \(SSL_get_error(ssl, n))): \(Self.reasons())") }
        return Int(n)
    }

    /// Reads what is available now, without waiting: the count of application bytes;
    /// 0 when the server closed (close_notify, EOF, reset or a fatal alert); nil when
    /// no application byte is there yet (nothing arrived, a record is incomplete, or
    /// only TLS 1.3 session tickets came).
    func read(into destination: UnsafeMutableRawPointer, capacity: Int) -> Int? {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(fd, F_SETFL, flags) }
        let n = SSL_read(ssl, destination, Int32(clamping: capacity))
        if n > 0 { return Int(n) }
        let code = SSL_get_error(ssl, n)
        ERR_clear_error()
        return code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE ? nil : 0
    }

    /// OpenSSL's error queue as text (emptied).
    private static func reasons() -> String {
        var out: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            out.append(ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)")
        }
        return out.isEmpty ? "no OpenSSL reason" : out.joined(separator: "; ")
    }
}
