@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// `read N`: the data, exactly, on stdout.
struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Write mailbox N's value, exactly, to stdout.")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
    }

    func run() throws {
        let connection = try tool.connect()
        let message = try connection.read(mailbox)
        try StandardIO.write(message.data, to: STDOUT_FILENO)
        try? connection.quit()
    }
}

/// `write N [TEXT]`: TEXT, or stdin verbatim to EOF; prints the new version.
struct WriteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write", abstract: "Set mailbox N to TEXT, or to stdin (read to its end) when TEXT is absent; print the new version.")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int
    @Argument(help: "The value (default: standard input, verbatim).") var text: String?

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
    }

    func run() throws {
        let data = try text.map { Array($0.utf8) } ?? StandardIO.readAll(from: STDIN_FILENO)
        let connection = try tool.connect()
        let version = try connection.write(mailbox, data)
        try StandardIO.write(Array("\(version)\n".utf8), to: STDOUT_FILENO)
        try? connection.quit()
    }
}

/// `info`: the server's key=value pairs, one per line.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Print the server's description, one key=value per line.")
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let connection = try tool.connect()
        let pairs = try connection.infoPairs()
        try StandardIO.write(Array(pairs.map { "\($0.key)=\($0.value)\n" }.joined().utf8), to: STDOUT_FILENO)
        try? connection.quit()
    }
}

/// `shell`: commands from stdin, one per line (see `ShellCommand.helpText`).
struct ShellCommandLine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shell", abstract: "Interactive: read commands from stdin (type 'help').")
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let tool = self.tool
        let shell = DIPCShell(connection: try tool.connect(), connect: { try tool.connect() })
        let interactive = isatty(STDIN_FILENO) == 1
        while true {
            if interactive { try StandardIO.write(Array("dipc> ".utf8), to: STDOUT_FILENO) }
            guard let line = Swift.readLine(strippingNewline: true) else {
                if interactive { try StandardIO.write([UInt8(ascii: "\n")], to: STDOUT_FILENO) }
                _ = shell.finish()
                return
            }
            let outcome = shell.execute(line)
            try StandardIO.write(outcome.output, to: STDOUT_FILENO)
            if let text = outcome.errorText {
                try StandardIO.write(Array((text + "\n").utf8), to: STDERR_FILENO)
            }
            if outcome.exit { return }
        }
    }
}
