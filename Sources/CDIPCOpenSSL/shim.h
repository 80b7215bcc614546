/* OpenSSL 3 (apt: libssl-dev) for the TLS of `dipc --tls-cert` and of the clients.
 * The calls below are macros in OpenSSL's headers, which Swift cannot import: each is
 * wrapped in a static inline function prefixed `cdipc_`. */
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION): TLS 1.2 or later only. */
static inline int cdipc_ssl_ctx_require_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

/* SSL_CTX_set_mode: SSL_write may return after part of the buffer (one record), and a
 * retried write may pass the rest from another address. */
static inline void cdipc_ssl_ctx_set_partial_writes(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/* SSL_set_tlsext_host_name (SNI) for a client. */
static inline int cdipc_ssl_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/* SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION): a client cannot make the server
 * redo handshakes. */
static inline void cdipc_ssl_ctx_refuse_renegotiation(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
}

/* SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF): a peer that closes without
 * close_notify reads as end of stream (the protocol has its own framing). */
static inline void cdipc_ssl_ctx_accept_eof_without_close_notify(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

/* Constants Swift sees as macros of expressions. */
static const int cdipc_ssl_filetype_pem = SSL_FILETYPE_PEM;
static const int cdipc_ssl_verify_peer = SSL_VERIFY_PEER;
static const int cdipc_ssl_verify_fail_if_no_peer_cert = SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
