import CDIPCOpenSSL
import DIPCCore

/// The server's OpenSSL context (`--tls-cert`, `--tls-key`, `--tls-ca`): TLS 1.2 or
/// later, the certificate chain and its key (checked to match), and with a client CA
/// a client certificate required in every handshake (mutual TLS). Loaded once at
/// start-up; shared, read-only, by every connection.
final class TLSServerContext: @unchecked Sendable {
    let context: OpaquePointer

    /// Loads the files; throws the one-line start-up failure naming the file and
    /// OpenSSL's reason.
    init(certificate: String, key: String, clientCA: String?) throws(StartupError) {
        guard let context = SSL_CTX_new(TLS_server_method()) else {
            throw StartupError("cannot set up TLS: \(TLSError.drain())")
        }
        self.context = context
        guard cdipc_ssl_ctx_require_tls12(context) == 1 else {
            throw StartupError("cannot set up TLS 1.2: \(TLSError.drain())")
        }
        cdipc_ssl_ctx_set_partial_writes(context)
        cdipc_ssl_ctx_refuse_renegotiation(context)
        // The key first: a certificate loaded after it drops a key it does not match, which
        // the check below then names as a mismatch.
        guard SSL_CTX_use_PrivateKey_file(context, key, cdipc_ssl_filetype_pem) == 1 else {
            throw StartupError("cannot load the TLS key \(key): \(TLSError.drain())")
        }
        guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else {
            throw StartupError("cannot load the TLS certificate \(certificate): \(TLSError.drain())")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            TLSError.clear()
            throw StartupError("the TLS key \(key) does not match the certificate \(certificate)")
        }
        if let clientCA {
            guard SSL_CTX_load_verify_locations(context, clientCA, nil) == 1,
                  let names = SSL_load_client_CA_file(clientCA) else {
                throw StartupError("cannot load the TLS client CA \(clientCA): \(TLSError.drain())")
            }
            SSL_CTX_set_client_CA_list(context, names)
            SSL_CTX_set_verify(context, cdipc_ssl_verify_peer | cdipc_ssl_verify_fail_if_no_peer_cert, nil)
        }
    }

    deinit { SSL_CTX_free(context) }
}

/// OpenSSL's per-thread error queue, read for messages and emptied.
enum TLSError {
    /// The reasons queued on this thread, oldest first, joined; the queue is emptied.
    static func drain() -> String {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            if let reason = ERR_reason_error_string(code) {
                reasons.append(String(cString: reason))
            } else {
                reasons.append("error \(code)")
            }
        }
        return reasons.isEmpty ? "unknown TLS error" : reasons.joined(separator: "; ")
    }

    /// Empties this thread's queue (after a failure that needs no message).
    static func clear() { ERR_clear_error() }
}
