@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// A subcommand that talks to the server chosen by the root command's options.
protocol ClientSubcommand: ParsableCommand {
    var tool: DIPCClientTool { get }
}

extension ClientSubcommand {
    /// Prints `text` (a trailing newline is added) on stdout.
    func printLine(_ text: String) throws {
        try StandardIO.write(Array((text + "\n").utf8), to: STDOUT_FILENO)
    }

    /// `key=value` lines, or one JSON object with `--json`.
    func printPairs(_ pairs: [(key: String, value: String)]) throws {
        if tool.json {
            try printLine(JSONValue.pairs(pairs).text)
        } else {
            try StandardIO.write(Array(pairs.map { "\($0.key)=\($0.value)\n" }.joined().utf8), to: STDOUT_FILENO)
        }
    }
}

/// `read N`: the data, exactly, on stdout.
struct ReadCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "read", abstract: "Write mailbox N's value, exactly, to stdout.",
        discussion: "With --json: {\"mailbox\":N,\"version\":V,\"length\":L,\"data\":TEXT} (\"data_base64\" when the value is not UTF-8).")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
    }

    func run() throws {
        let connection = try tool.connect()
        try printMessage(connection.read(mailbox), mailbox: mailbox)
        try? connection.quit()
    }
}

/// `write N [TEXT]`: TEXT, or stdin verbatim to EOF; prints the new version.
struct WriteCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "write", abstract: "Set mailbox N to TEXT, or to stdin (read to its end) when TEXT is absent; print the new version.",
        discussion: "With --json: {\"mailbox\":N,\"version\":V}.")
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
        if tool.json {
            try printLine(JSONValue.object([("mailbox", .int(mailbox)), ("version", .int(Int(version)))]).text)
        } else {
            try printLine("\(version)")
        }
        try? connection.quit()
    }
}

/// `info`: the server's key=value pairs, one per line.
struct InfoCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Print the server's description, one key=value per line (the 'i' request).")
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let connection = try tool.connect()
        try printPairs(try connection.infoPairs())
        try? connection.quit()
    }
}

/// `stats`: the server's counters (the `s` request), one key=value per line.
struct StatsCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print the server's counters since it started, one key=value per line (the 's' request).",
        discussion: """
            connections (open now, this one included), accepted, rejected (busy), reads, writes, \\
            pushes, takes, errors (err replies), bytes_in, bytes_out, uptime_s.
            """)
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let connection = try tool.connect()
        try printPairs(try connection.statsPairs())
        try? connection.quit()
    }
}

/// `shell`: commands from stdin, one per line (see `ShellCommand.helpText`), with line
/// editing and history when stdin and stdout are terminals.
struct ShellCommandLine: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "shell",
        abstract: "Interactive: read commands from stdin (type 'help').",
        discussion: """
            On a terminal, lines can be edited (arrows, Ctrl-A/E/K/U/W, Ctrl-R search) and earlier \\
            lines recalled; history is kept in $DIPC_HISTORY, else ~/.dipc_history. When stdin is \\
            not a terminal, lines are read as they are, without a prompt, for scripts.
            """)
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let tool = self.tool
        let shell = DIPCShell(connection: try tool.connect(), connect: { try tool.connect() })
        let reader = LineReader.forStandardInput()
        defer { reader.close() }
        while true {
            guard let line = reader.readLine(prompt: "dipc> ") else {
                if reader.isInteractive { try StandardIO.write([UInt8(ascii: "\n")], to: STDOUT_FILENO) }
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
