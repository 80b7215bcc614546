@preconcurrency import Glibc
import ArgumentParser
import DIPCClient

/// The longest wait the protocol accepts (SPEC §2: WAIT_MS is at most an hour).
let maximumWaitMilliseconds = 3_600_000

/// Checks a `--wait` value against the protocol's range.
func validateWait(_ milliseconds: Int) throws {
    guard (0...maximumWaitMilliseconds).contains(milliseconds) else {
        throw ValidationError("--wait \(milliseconds) is outside 0...\(maximumWaitMilliseconds) (milliseconds)")
    }
}

extension ClientSubcommand {
    /// A message's bytes, exactly, on stdout; with `--json` one object
    /// `{"mailbox":N,"version":V,"length":L,"data":TEXT}` (`data_base64` when not UTF-8).
    func printMessage(_ message: Message, mailbox: Int) throws {
        if tool.json {
            try printLine(JSONValue.object([
                ("mailbox", .int(mailbox)), ("version", .int(Int(message.version))),
                ("length", .int(message.data.count)), JSONValue.data(message.data),
            ]).text)
        } else {
            try StandardIO.write(message.data, to: STDOUT_FILENO)
        }
    }
}

/// `push N [TEXT] [--wait MS]`: appends TEXT (or stdin, verbatim) to mailbox N's queue;
/// prints the new version. No room within MS: `err full`, exit 1.
struct PushCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Append TEXT, or stdin (read to its end) when TEXT is absent, to mailbox N's queue; print the new version.")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int
    @Argument(help: "The message (default: standard input, verbatim).") var text: String?
    @Option(help: "Milliseconds to wait for room when the queue is full (0...3600000).") var wait: Int = 0

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
        try validateWait(wait)
    }

    func run() throws {
        let data = try text.map { Array($0.utf8) } ?? StandardIO.readAll(from: STDIN_FILENO)
        let connection = try tool.connect()
        let version = try connection.push(mailbox, data, waitMilliseconds: wait)
        if tool.json {
            try printLine(JSONValue.object([("mailbox", .int(mailbox)), ("version", .int(Int(version)))]).text)
        } else {
            try printLine("\(version)")
        }
        try? connection.quit()
    }
}

/// `take N [--wait MS]`: removes mailbox N's oldest message and writes it, exactly, to
/// stdout. None within MS: `err empty`, exit 1.
struct TakeCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "take", abstract: "Remove mailbox N's oldest message and write it, exactly, to stdout.")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int
    @Option(help: "Milliseconds to wait for a message when the queue is empty (0...3600000).") var wait: Int = 0

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
        try validateWait(wait)
    }

    func run() throws {
        let connection = try tool.connect()
        let message = try connection.consume(mailbox, waitMilliseconds: wait)
        try printMessage(message, mailbox: mailbox)
        try? connection.quit()
    }
}

/// `watch N [--after VERSION] [--wait MS]`: waits until mailbox N's version is above
/// VERSION (default: its version now, i.e. the next change) or MS pass, then writes the
/// newest message, exactly, to stdout and its version to stderr as `version V`.
struct WatchCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Wait for mailbox N to change, then write its newest message to stdout (and 'version V' to stderr).")
    @ParentCommand var tool: DIPCClientTool
    @Argument(help: "The mailbox number.") var mailbox: Int
    @Option(help: "Wait for a version above this one (default: the current version).") var after: UInt64?
    @Option(help: "Milliseconds to wait at most (0...3600000); then the current value is written.") var wait: Int = maximumWaitMilliseconds

    func validate() throws {
        if mailbox < 0 { throw ValidationError("mailbox number must be 0 or more") }
        try validateWait(wait)
    }

    func run() throws {
        let connection = try tool.connect()
        let version = try after ?? connection.read(mailbox).version
        let message = try connection.watch(mailbox, after: version, waitMilliseconds: wait)
        try printMessage(message, mailbox: mailbox)
        if !tool.json { try StandardIO.write(Array("version \(message.version)\n".utf8), to: STDERR_FILENO) }
        try? connection.quit()
    }
}
