/// How a client speaks TLS to a server started with `--tls-cert` (SPEC §1 `dipc-client
/// --tls`): the server's certificate is verified against `caFile` (else the system's
/// CAs) and against the host name or IP address connected to; `certificateFile` and
/// `keyFile` present a client certificate (for a server with `--tls-ca`).
public struct DIPCTLSOptions: Sendable, Equatable {
    /// PEM CA bundle that verifies the server; nil: the system's CAs.
    public var caFile: String?
    /// PEM client certificate chain, and its key (both or neither).
    public var certificateFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}
