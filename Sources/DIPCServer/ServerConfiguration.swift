/// Everything a running server needs to know that is not the store itself.
public struct ServerConfiguration: Sendable {
    /// Listen address (IPv4, IPv6, or a host name resolved to its first address).
    public var bindAddress: String
    public var port: Int
    /// Bytes moved per socket call, and the size of each connection's receive buffer.
    public var packetSize: Int
    /// Connections served at once; one more is answered `err busy` and closed.
    public var maxClients: Int
    /// Seconds a started request may stall before `err timeout`.
    public var ioTimeoutSeconds: Int
    /// Memory, in MiB, for the data of writes and pushes still arriving (`--max-staging-mb`);
    /// the server raises it to one mailbox when it is smaller (see `StagingBudget`).
    public var maxStagingMegabytes = ServerConfiguration.defaultMaxStagingMegabytes
    /// `--max-staging-mb`'s default.
    public static let defaultMaxStagingMegabytes = 256
    /// Start-up and shutdown limits (the stop grace period among them).
    public var timeouts = ServerTimeouts.standard
    /// The backend's name for `i` (`sysv`, `posix`, `tdb`).
    public var backendName: String
    /// `--auth-file`, `--tls-*`, `--unix`, `--insecure` (checked at start-up).
    public var access = AccessConfiguration()

    public init(bindAddress: String, port: Int, packetSize: Int, maxClients: Int, ioTimeoutSeconds: Int, backendName: String) {
        self.bindAddress = bindAddress
        self.port = port
        self.packetSize = packetSize
        self.maxClients = maxClients
        self.ioTimeoutSeconds = ioTimeoutSeconds
        self.backendName = backendName
    }
}
