/// Who may use a server and how they reach it (SPEC §1 `--auth-file`, `--tls-*`,
/// `--unix`, `--insecure`): paths and switches only, as the command line gives them.
/// `ServerAccess.load` checks them at start-up.
public struct AccessConfiguration: Sendable {
    /// `--auth-file`: every connection must first present this file's token.
    public var authFile: String?
    /// `--tls-cert`, `--tls-key`: the TCP port speaks TLS only.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// `--tls-ca`: also require a client certificate this CA bundle verifies.
    public var tlsClientCA: String?
    /// `--unix`: also listen on a Unix-domain stream socket here.
    public var unixSocketPath: String?
    /// `--insecure`: serve an address beyond loopback without authentication.
    public var insecure = false

    public init() {}

    /// Whether connections must prove who they are (a token or a client certificate).
    var authenticates: Bool { authFile != nil || tlsClientCA != nil }
}
