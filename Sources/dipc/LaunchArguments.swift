import ArgumentParser
import DIPCBackendProvider
import DIPCBackends
import DIPCCore
import DIPCServer

/// Turns the command's raw strings into a launch, with a one-line error for anything
/// out of range. Every number must be plain positive decimal digits.
struct LaunchArguments {
    let command: DIPCCommand

    /// Largest accepted values; larger ones are surely mistakes.
    static let maximumMailboxes = 1 << 24
    static let maximumKB = 1 << 22  // 4 GiB
    static let maximumPacketKB = 1 << 20  // 1 GiB
    static let maximumStagingMB = 1 << 24  // 16 TiB

    func resolve() throws -> (LaunchRequest, any BackendStore) {
        let mailboxes = try number(command.mailboxes, "<mailboxes>", max: Self.maximumMailboxes)
        let mailboxKB = try number(command.mailboxKB, "<mailbox-kb>", max: Self.maximumKB)
        let port = try number(command.port, "<port>", max: 65535)
        let packetKB = try number(command.packetKB, "<packet-kb>", max: Self.maximumPacketKB)
        let maxClients = try number(command.maxClients, "--max-clients", max: 1 << 20)
        let ioTimeout = try number(command.ioTimeout, "--io-timeout", max: 86_400 * 365)
        let maxStagingMB = try number(command.maxStagingMb, "--max-staging-mb", max: Self.maximumStagingMB)
        guard command.backends.provider(named: command.backend) != nil else {
            throw ValidationError("--backend must be \(BackendRegistry.namesPhrase), not \"\(command.backend)\"")
        }
        guard let policy = CoordinatorPolicy(rawValue: command.coordinator) else {
            throw ValidationError("--coordinator must be fifo or phase-fair, not \"\(command.coordinator)\"")
        }
        let name = command.name ?? "port\(port)"
        guard StoreName.isValid(name) else {
            throw ValidationError("--name must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit, not \"\(name)\"")
        }
        let geometry = StoreGeometry(mailboxes: mailboxes, mailboxSize: mailboxKB * 1024)
        let store = try command.backends.store(
            backend: command.backend, for: StoreRequest(name: name, geometry: geometry, policy: policy, ioTimeout: Double(ioTimeout)))
        guard StoreLayout.mappedSize(for: geometry) != nil else {
            throw ValidationError("\(geometry) is too large")
        }
        var configuration = ServerConfiguration(
            bindAddress: command.bind, port: port, packetSize: packetKB * 1024, maxClients: maxClients,
            ioTimeoutSeconds: ioTimeout, backendName: command.backend)
        configuration.access = access()
        configuration.maxStagingMegabytes = maxStagingMB
        configuration.metrics = try metricsAddress()
        let request = LaunchRequest(
            configuration: configuration, storeName: name, geometry: geometry, policy: policy,
            foreground: command.foreground, recordFields: store.recordFields)
        return (request, store)
    }

    /// The access options as given; their files are checked at start-up (`ServerAccess`).
    private func access() -> AccessConfiguration {
        var access = AccessConfiguration()
        access.authFile = command.authFile
        access.unixSocketPath = command.unix
        access.tlsCertificate = command.tlsCert
        access.tlsKey = command.tlsKey
        access.tlsClientCA = command.tlsCa
        access.insecure = command.insecure
        return access
    }

    /// `--metrics ADDR:PORT`, or nil when not given.
    private func metricsAddress() throws -> MetricsAddress? {
        guard let text = command.metrics else { return nil }
        guard let address = MetricsAddress(parsing: text) else {
            throw ValidationError("--metrics must be ADDR:PORT (an IPv6 address in brackets) with a port of 1-65535, not \"\(text)\"")
        }
        return address
    }

    /// `text` as a number in `1...max`, or a one-line error naming `what`.
    private func number(_ text: String, _ what: String, max: Int) throws -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw ValidationError("\(what) must be a positive decimal number, not \"\(text)\"")
        }
        guard let value = Int(text), value >= 1, value <= max else {
            throw ValidationError("\(what) must be between 1 and \(max), not \(text)")
        }
        return value
    }
}
