import CDIPCOpenSSL
import Glibc

/// One client-side TLS session over a connected, blocking socket whose send and receive
/// timeouts bound every call (an OpenSSL "want read/write" after a timeout is reported
/// as one). TLS 1.2 or later; the server's certificate chain and its name or IP are
/// verified. Errors are `DIPCClientError.connection` naming the peer and OpenSSL's reason.
final class ClientTLSSession {
    private let ssl: OpaquePointer
    private let peer: String
    private let timeoutSeconds: Double

    /// Handshakes on `fd`, connected to `host` (as the user named it) at `peer`.
    init(fd: Int32, host: String, peer: String, options: DIPCTLSOptions, timeoutSeconds: Double) throws {
        self.peer = peer
        self.timeoutSeconds = timeoutSeconds
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw Self.failure("TLS setup for \(peer)") }
        defer { SSL_CTX_free(context) }  // the session holds its own reference
        try Self.configure(context, options: options)
        // After the context is complete: SSL_new copies its verify mode and certificate.
        guard let ssl = SSL_new(context) else { throw Self.failure("TLS setup for \(peer)") }
        self.ssl = ssl
        // The server's name or address must be in its certificate.
        var address = in6_addr()
        let isIP = inet_pton(AF_INET, host, &address) == 1 || inet_pton(AF_INET6, host, &address) == 1
        if isIP {
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 else { throw Self.failure("TLS host check") }
        } else {
            guard SSL_set1_host(ssl, host) == 1 else { throw Self.failure("TLS host check") }
            _ = cdipc_ssl_set_server_name(ssl, host)
        }
        guard SSL_set_fd(ssl, fd) == 1 else { throw Self.failure("TLS setup for \(peer)") }
        let result = SSL_connect(ssl)
        guard result == 1 else {
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                ERR_clear_error()
                let reason = X509_verify_cert_error_string(verify).map { String(cString: $0) } ?? "error \(verify)"
                throw DIPCClientError.connection("TLS handshake with \(peer): the server's certificate is not accepted: \(reason)")
            }
            throw failure(after: result, "TLS handshake with \(peer)")
        }
    }

    deinit { SSL_free(ssl) }

    /// TLS 1.2 or later, the server verified against the CA file (else the system's
    /// CAs), and the client certificate when one is given.
    private static func configure(_ context: OpaquePointer, options: DIPCTLSOptions) throws {
        guard cdipc_ssl_ctx_require_tls12(context) == 1 else { throw Self.failure("TLS setup") }
        cdipc_ssl_ctx_accept_eof_without_close_notify(context)
        cdipc_ssl_ctx_set_partial_writes(context)
        if let ca = options.caFile {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else { throw Self.failure("TLS CA file \(ca)") }
        } else {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else { throw Self.failure("the system's TLS CAs") }
        }
        SSL_CTX_set_verify(context, cdipc_ssl_verify_peer, nil)
        switch (options.certificateFile, options.keyFile) {
        case let (certificate?, key?):
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
                throw Self.failure("TLS certificate \(certificate)")
            }
            guard SSL_CTX_use_PrivateKey_file(context, key, cdipc_ssl_filetype_pem) == 1 else {
                throw Self.failure("TLS key \(key)")
            }
            guard SSL_CTX_check_private_key(context) == 1 else {
                ERR_clear_error()
                throw DIPCClientError.connection("the TLS key \(key) does not match the certificate \(certificate)")
            }
        case (nil, nil):
            break
        default:
            throw DIPCClientError.connection("a TLS client certificate needs both a certificate and a key file")
        }
    }

    /// Sends every byte (TLS records of at most 16 KiB each).
    func sendAll(_ raw: UnsafeRawBufferPointer) throws {
        var sent = 0
        while sent < raw.count {
            let result = SSL_write(ssl, raw.baseAddress! + sent, Int32(clamping: raw.count - sent))
            guard result > 0 else { throw failure(after: result, "send to \(peer)") }
            sent += Int(result)
        }
    }

    /// Receives up to `capacity` bytes at `destination`: the count, 0 at end of stream.
    func receive(into destination: UnsafeMutableRawPointer, capacity: Int) throws -> Int {
        let result = SSL_read(ssl, destination, Int32(clamping: capacity))
        if result > 0 { return Int(result) }
        if SSL_get_error(ssl, result) == SSL_ERROR_ZERO_RETURN { return 0 }
        throw failure(after: result, "recv from \(peer)")
    }

    /// Decrypted bytes ready without reading the socket.
    var pending: Int { Int(SSL_pending(ssl)) }

    /// Sends close_notify (best effort: the socket is closed right after).
    func shutdown() {
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    /// The error for a failed `SSL_*` call that returned `result`.
    private func failure(after result: Int32, _ what: String) -> DIPCClientError {
        let code = SSL_get_error(ssl, result)
        let savedErrno = Glibc.errno
        if code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE {
            ERR_clear_error()
            return .connection("\(what): timed out after \(formatSeconds(timeoutSeconds)) s")
        }
        if code == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 {
            return savedErrno == 0 ? .connection("\(what): connection closed by the server") : connectionError(what, errno: savedErrno)
        }
        return Self.failure(what)
    }

    /// `what: REASONS` from OpenSSL's error queue (emptied).
    private static func failure(_ what: String) -> DIPCClientError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            reasons.append(ERR_reason_error_string(code).map { String(cString: $0) } ?? "error \(code)")
        }
        return .connection("\(what): \(reasons.isEmpty ? "TLS failure" : reasons.joined(separator: "; "))")
    }
}
