@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// `dipc-client [--host H] [--port P] <subcommand>`.
/// Exit codes (spec section 1): 0 success; 1 when the server answers `err` or cannot
/// be reached (one line `dipc-client: REASON` on stderr); 2 on bad usage.
@main
struct DIPCClientTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc-client",
        abstract: "Read and write the mailboxes of a dipc server.",
        discussion: "The port defaults to $DIPC_PORT when set, else 7070.",
        subcommands: [ReadCommand.self, WriteCommand.self, InfoCommand.self, ShellCommandLine.self, PushCommand.self, TakeCommand.self, WatchCommand.self])

    @Option(help: "The server's address or host name.")
    var host: String = "127.0.0.1"

    @Option(help: "The server's TCP port (default: $DIPC_PORT, else 7070).")
    var port: Int?

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
    }

    func run() throws {
        throw ValidationError("missing subcommand (read, write, info or shell)")
    }

    /// Opens a connection to the server chosen by the options.
    func connect() throws -> DIPCConnection {
        try DIPCConnection(host: host, port: try resolvedPort)
    }

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exitForArgumentError(error)
        }
        do {
            var command = command
            try command.run()
        } catch let error as DIPCClientError {
            fail(error.description)
        } catch let error as ToolFailure {
            fail(error.reason)
        } catch {
            exitForArgumentError(error)
        }
        Glibc.exit(0)
    }

    /// Help and clean exits: 0 (help on stdout). An explicit `ExitCode`: its value.
    /// Every other parse or validation error: the message on stderr, exit 2.
    static func exitForArgumentError(_ error: Error) -> Never {
        if let code = error as? ExitCode { Glibc.exit(code.rawValue) }
        let message = fullMessage(for: error)
        if exitCode(for: error) == .success {
            if !message.isEmpty { try? StandardIO.write(Array((message + "\n").utf8), to: STDOUT_FILENO) }
            Glibc.exit(0)
        }
        try? StandardIO.write(Array((message + "\n").utf8), to: STDERR_FILENO)
        Glibc.exit(2)
    }

    /// `dipc-client: REASON` on stderr, exit 1.
    static func fail(_ reason: String) -> Never {
        try? StandardIO.write(Array("dipc-client: \(reason)\n".utf8), to: STDERR_FILENO)
        Glibc.exit(1)
    }
}
