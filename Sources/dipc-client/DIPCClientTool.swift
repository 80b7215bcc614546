@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// `dipc-client [--host H] [--port P] <subcommand>`.
/// Exit codes (spec section 1): 0 success; 1 when the server answers `err` or cannot
/// be reached (one line `dipc-client: REASON` on stderr, or with `--json` one JSON
/// object `{"error": REASON, "code": CODE}`); 2 on bad usage (the reason on stderr).
@main
struct DIPCClientTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc-client",
        abstract: "Read and write the mailboxes of a dipc server.",
        discussion: """
            The port defaults to $DIPC_PORT when set, else 7070; the auth file to $DIPC_AUTH_FILE. Exit status: 0 on success, \
            1 when the server answers err or cannot be reached (the reason on stderr), 2 on bad usage. See dipc-client(1).
            """,
        subcommands: [ReadCommand.self, WriteCommand.self, InfoCommand.self, StatsCommand.self, ListCommand.self, ShellCommandLine.self,
                      PushCommand.self, TakeCommand.self, WatchCommand.self])

    @Option(help: "The server's address or host name.")
    var host: String = "127.0.0.1"

    @Option(help: "The server's TCP port (default: $DIPC_PORT, else 7070).")
    var port: Int?

    @Flag(help: "Print results as one line of JSON, and failures as JSON on stderr (not for shell).")
    var json = false

    @Option(help: "Connect to the server's Unix-domain socket at this path instead of TCP.")
    var unix: String?

    @Option(help: "Send the token on this file's first line first (default: $DIPC_AUTH_FILE when set).")
    var authFile: String?

    @Flag(help: "Speak TLS, verifying the server's certificate and its host name or IP.")
    var tls = false

    @Option(help: "With --tls: the PEM CA bundle that verifies the server (default: the system's CAs).")
    var tlsCa: String?

    @Option(help: "With --tls: present this PEM client certificate (needs --tls-key).")
    var tlsCert: String?

    @Option(help: "With --tls: the PEM private key of --tls-cert.")
    var tlsKey: String?

    /// `--port`, else `$DIPC_PORT`, else 7070.
    var resolvedPort: Int {
        get throws {
            if let port { return port }
            guard let env = getenv("DIPC_PORT") else { return 7070 }
            let text = String(cString: env)
            guard let value = Int(text), text.allSatisfy(\.isASCII), text.first != "+", (1...65535).contains(value)
            else { throw ValidationError("DIPC_PORT='\(text)' is not a port number (1-65535)") }
            return value
        }
    }

    func validate() throws {
        if let port, !(1...65535).contains(port) {
            throw ValidationError("--port \(port) is not a port number (1-65535)")
        }
        if host.isEmpty { throw ValidationError("--host must not be empty") }
        if !tls, tlsCa != nil || tlsCert != nil || tlsKey != nil {
            throw ValidationError("--tls-ca, --tls-cert and --tls-key need --tls")
        }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if unix != nil && tls { throw ValidationError("--unix does not speak TLS: give --unix or --tls, not both") }
    }

    func run() throws {
        throw ValidationError("missing subcommand (see dipc-client --help)")
    }

    /// Opens a connection to the server chosen by the options.
    /// With an auth file (`--auth-file`, else `$DIPC_AUTH_FILE`), its token is sent first.
    func connect() throws -> DIPCConnection {
        let connection: DIPCConnection
        if let unix {
            connection = try DIPCConnection(unixPath: unix)
        } else {
            let options = tls ? DIPCTLSOptions(caFile: tlsCa, certificateFile: tlsCert, keyFile: tlsKey) : nil
            connection = try DIPCConnection(host: host, port: try resolvedPort, tls: options)
        }
        if let path = authFile ?? getenv("DIPC_AUTH_FILE").map({ String(cString: $0) }), !path.isEmpty {
            try connection.authenticate(token: try DIPCAuthFile.token(at: path))
        }
        return connection
    }

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitForArgumentError(error)
        }
        let json = (command as? DIPCClientTool)?.json ?? (command as? ClientSubcommand)?.tool.json ?? false
        do {
            var command = command
            try command.run()
        } catch let error as DIPCClientError {
            if case .server(let code, _) = error { fail(error.description, code: code, json: json) }
            fail(error.description, json: json)
        } catch let error as ToolFailure {
            fail(error.reason, json: json)
        } catch {
            exitForArgumentError(error)
        }
        Glibc.exit(0)
    }

    /// Help and clean exits: 0 (help on stdout). An explicit `ExitCode`: its value.
    /// Every other parse or validation error: one line `dipc-client: REASON` on stderr,
    /// exit 2 (as `dipc` and `dipcrm` do).
    static func exitForArgumentError(_ error: Error) -> Never {
        if let code = error as? ExitCode { Glibc.exit(code.rawValue) }
        if exitCode(for: error) == .success {
            let help = fullMessage(for: error)
            if !help.isEmpty { try? StandardIO.write(Array((help + "\n").utf8), to: STDOUT_FILENO) }
            Glibc.exit(0)
        }
        let reason = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        try? StandardIO.write(Array("dipc-client: \(reason)\n".utf8), to: STDERR_FILENO)
        Glibc.exit(2)
    }

    /// `dipc-client: REASON` on stderr (with `json`: `{"error":REASON,"code":CODE}`), exit 1.
    /// `code` is the server's error code when the server answered `err`.
    static func fail(_ reason: String, code: String? = nil, json: Bool = false) -> Never {
        let line: String
        if json {
            line = JSONValue.object([("error", .string(reason)), ("code", code.map { .string($0) } ?? .null)]).text
        } else {
            line = "dipc-client: \(reason)"
        }
        try? StandardIO.write(Array((line + "\n").utf8), to: STDERR_FILENO)
        Glibc.exit(1)
    }
}
