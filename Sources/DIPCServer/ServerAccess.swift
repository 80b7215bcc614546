import Glibc

/// What start-up loaded from an `AccessConfiguration`, for the connections: the auth
/// file's token and the TLS context. Checked once, before anything is bound or created.
struct ServerAccess: Sendable {
    /// The `--auth-file` token; nil when no token is required.
    var secret: AuthenticationSecret?
    /// With `--tls-cert`: the TCP listener speaks TLS only (a Unix socket never does).
    var tls: TLSServerContext?

    /// Nothing required: the server without access options.
    static let open = ServerAccess()

    /// Checks and loads `configuration`'s files, and protected mode for `bindAddress`;
    /// throws the one-line start-up failure SPEC §1 describes.
    static func load(_ configuration: AccessConfiguration, bindAddress: String) throws(StartupError) -> ServerAccess {
        var access = ServerAccess()
        if let path = configuration.authFile { access.secret = try AuthenticationSecret(file: path) }
        access.tls = try loadTLS(configuration)
        try BindAddress.check(bindAddress, access: configuration)
        return access
    }

    private static func loadTLS(_ configuration: AccessConfiguration) throws(StartupError) -> TLSServerContext? {
        guard let certificate = configuration.tlsCertificate else {
            if configuration.tlsKey != nil { throw StartupError("--tls-key needs --tls-cert") }
            if configuration.tlsClientCA != nil { throw StartupError("--tls-ca needs --tls-cert") }
            return nil
        }
        guard let key = configuration.tlsKey else { throw StartupError("--tls-cert needs --tls-key") }
        for (what, path) in [("certificate", certificate), ("key", key), ("client CA", configuration.tlsClientCA)] {
            guard let path else { continue }
            if access(path, R_OK) != 0 {
                throw StartupError("cannot read the TLS \(what) \(path): \(String(cString: strerror(errno)))")
            }
        }
        return try TLSServerContext(certificate: certificate, key: key, clientCA: configuration.tlsClientCA)
    }
}
