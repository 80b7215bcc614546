/// What start-up loaded from an `AccessConfiguration`, for the connections: the auth
/// file's token. Checked once, before anything is bound or created.
struct ServerAccess: Sendable {
    /// The `--auth-file` token; nil when no token is required.
    var secret: AuthenticationSecret?

    /// Nothing required: the server without access options.
    static let open = ServerAccess()

    /// Checks and loads `configuration`'s files, and protected mode for `bindAddress`;
    /// throws the one-line start-up failure SPEC §1 describes.
    static func load(_ configuration: AccessConfiguration, bindAddress: String) throws(StartupError) -> ServerAccess {
        var access = ServerAccess()
        if let path = configuration.authFile { access.secret = try AuthenticationSecret(file: path) }
        try BindAddress.check(bindAddress, access: configuration)
        return access
    }
}
