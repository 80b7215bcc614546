@preconcurrency import Glibc
import ArgumentParser
import DIPCBackends
import DIPCCore
import DIPCServer

@main
struct DIPCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc",
        abstract: "Serve fixed-size mailboxes in shared memory (or a TDB file) over TCP.",
        discussion: """
            Stop a server with `dipcrm <port>` or SIGTERM. Exit status: 0 once the server accepts \
            connections (with --foreground: once it has stopped), 1 when start-up fails (the reason \
            on stderr), 2 on bad usage. See dipc(1) and docs/PROTOCOL.md.
            """)

    @Argument(help: "Number of mailboxes.") var mailboxes: String
    @Argument(help: "Size of each mailbox in KiB.") var mailboxKB: String
    @Argument(help: "TCP port to listen on.") var port: String
    @Argument(help: "Packet size in KiB: bytes moved per socket call.") var packetKB: String

    @Option(help: "Where the mailboxes live: \(BackendRegistry.namesPhrase).") var backend: String = BackendRegistry.names[0]
    @Option(help: "Store name; servers with the same backend and name share mailboxes. (default: port<PORT>)") var name: String?
    /// Every backend's own options (`--db`, `--sync`, ...), declared by the backend.
    @OptionGroup var backends: BackendRegistry
    @Option(help: "Readers-writer policy: fifo or phase-fair.") var coordinator: String = "fifo"
    @Option(help: "Listen address.") var bind: String = "127.0.0.1"
    @Option(help: "Connections served at once.") var maxClients: String = "256"
    @Option(help: "Seconds a started request may stall before `err timeout`.") var ioTimeout: String = "30"
    @Option(help: "MiB for the data of writes and pushes still arriving (at least one mailbox).")
    var maxStagingMb: String = String(ServerConfiguration.defaultMaxStagingMegabytes)
    @Flag(help: "Do not detach; log to stderr.") var foreground = false
    @Option(help: "Require every connection to present the token on this file's first line (`a TOKEN`) first.") var authFile: String?
    @Option(help: "Serve TLS (1.2 or later) only on the TCP port, with this PEM certificate chain (needs --tls-key).") var tlsCert: String?
    @Option(help: "The PEM private key of --tls-cert.") var tlsKey: String?
    @Option(help: "Also require a client certificate that this PEM CA bundle verifies (mutual TLS; needs --tls-cert).") var tlsCa: String?
    @Option(help: "Also listen on a Unix-domain socket at this path (mode 0600).") var unix: String?
    @Flag(help: "Allow a --bind address beyond loopback with neither --auth-file nor --tls-ca.") var insecure = false

    func validate() throws {
        _ = try LaunchArguments(command: self).resolve()
    }

    func run() throws {
        let (request, store) = try LaunchArguments(command: self).resolve()
        let arguments = Array(CommandLine.arguments.dropFirst())
        Glibc.exit(ServerLauncher.run(request, arguments: arguments) { try store.open() })
    }

    /// Parses and runs; any usage error is one line on stderr and exit status 2.
    static func main() {
        // ArgumentParser would take "-1" for an option; name the real problem instead.
        if let negative = CommandLine.arguments.dropFirst().first(where: { $0.count > 1 && $0.hasPrefix("-") && $0.dropFirst().allSatisfy(\.isNumber) }) {
            fputs("dipc: every number must be a plain positive decimal, not \"\(negative)\"\n", stderr)
            Glibc.exit(2)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fputs("dipc: \(message)\n", stderr)
            Glibc.exit(2)
        }
    }
}
