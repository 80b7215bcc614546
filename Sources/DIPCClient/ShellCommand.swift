/// One line typed into `dipc-client shell`, parsed.
///
/// Grammar (fields separated by spaces; a trailing `\r` is ignored):
/// - `r N` / `read N`: print mailbox N's value
/// - `r N VERSION WAIT_MS` / `read N VERSION WAIT_MS`: watch: wait until the version is
///   above VERSION (at most WAIT_MS), then print the value
/// - `w N TEXT...` / `write N TEXT...`: TEXT is the rest of the line after the single
///   space following N, verbatim (spaces included); `w N` alone writes an empty value
/// - `p N TEXT...` / `push N TEXT...`: append TEXT (as for `w`) to mailbox N's queue
/// - `c N [WAIT_MS]` / `take N [WAIT_MS]`: remove and print the oldest message
/// - `i` / `info`, `s` / `stats`, `q` / `quit`, `help`
/// - an empty or blank line does nothing
/// N is a plain decimal number. Anything else is a `ShellCommand.UsageError`.
public enum ShellCommand: Equatable, Sendable {
    case read(mailbox: Int)
    case watch(mailbox: Int, afterVersion: UInt64, waitMilliseconds: Int)
    case write(mailbox: Int, data: [UInt8])
    case push(mailbox: Int, data: [UInt8])
    case take(mailbox: Int, waitMilliseconds: Int)
    case info
    case stats
    case quit
    case help
    case empty

    /// Why a line is not a command; `description` is one line for the user.
    public struct UsageError: Error, Equatable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static let helpText = """
        commands:
          r N | read N              print mailbox N's value
          r N VERSION WAIT_MS       wait up to WAIT_MS ms for a version above VERSION, then print
          w N TEXT | write N TEXT   set mailbox N to TEXT (the rest of the line, verbatim)
          p N TEXT | push N TEXT    append TEXT to mailbox N's queue
          c N [WAIT_MS] | take N    remove and print the oldest message (waiting up to WAIT_MS ms)
          i | info                  describe the server
          s | stats                 the server's counters
          help                      this text
          q | quit                  leave (so does end of input)
        """

    public static func parse(_ line: String) throws(UsageError) -> ShellCommand {
        var text = Substring(line)
        if text.hasSuffix("\r") { text = text.dropLast() }
        text = text.drop(while: { $0 == " " || $0 == "\t" })
        let word = text.prefix(while: { $0 != " " && $0 != "\t" })
        var rest = text.dropFirst(word.count)

        switch word {
        case "":
            return .empty
        case "r", "read":
            let args = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let usage = "\(word) N [VERSION WAIT_MS]"
            guard args.count == 1 || args.count == 3 else { throw UsageError(description: "usage: \(usage)") }
            let n = try mailbox(args[0], usage: usage)
            guard args.count == 3 else { return .read(mailbox: n) }
            guard let version = ReplyParsing.decimal(args[1]) else {
                throw UsageError(description: "'\(args[1])' is not a version (usage: \(usage))")
            }
            return .watch(mailbox: n, afterVersion: version, waitMilliseconds: try milliseconds(args[2], usage: usage))
        case "c", "take":
            let args = rest.split(whereSeparator: { $0 == " " || $0 == "\t" })
            let usage = "\(word) N [WAIT_MS]"
            guard args.count == 1 || args.count == 2 else { throw UsageError(description: "usage: \(usage)") }
            let wait = args.count == 2 ? try milliseconds(args[1], usage: usage) : 0
            return .take(mailbox: try mailbox(args[0], usage: usage), waitMilliseconds: wait)
        case "w", "write", "p", "push":
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            let number = rest.prefix(while: { $0 != " " && $0 != "\t" })
            guard !number.isEmpty else { throw UsageError(description: "usage: \(word) N TEXT") }
            let n = try mailbox(number, usage: "\(word) N TEXT")
            var value = rest.dropFirst(number.count)
            if !value.isEmpty { value = value.dropFirst() }  // the one separator after N
            return word.hasPrefix("w") ? .write(mailbox: n, data: Array(value.utf8)) : .push(mailbox: n, data: Array(value.utf8))
        case "i", "info", "s", "stats", "q", "quit", "help":
            guard rest.allSatisfy({ $0 == " " || $0 == "\t" }) else {
                throw UsageError(description: "usage: \(word) (takes no arguments)")
            }
            switch word {
            case "i", "info": return .info
            case "s", "stats": return .stats
            case "q", "quit": return .quit
            default: return .help
            }
        default:
            throw UsageError(description: "unknown command '\(word)' (try 'help')")
        }
    }

    /// A wait in milliseconds: a plain decimal up to an hour (the protocol's limit).
    private static func milliseconds(_ field: Substring, usage: String) throws(UsageError) -> Int {
        guard let value = ReplyParsing.decimal(field), value <= 3_600_000 else {
            throw UsageError(description: "'\(field)' is not a wait of 0 to 3600000 ms (usage: \(usage))")
        }
        return Int(value)
    }

    private static func mailbox(_ field: Substring, usage: String) throws(UsageError) -> Int {
        guard let value = ReplyParsing.decimal(field), value <= UInt64(Int.max) else {
            throw UsageError(description: "'\(field)' is not a mailbox number (usage: \(usage))")
        }
        return Int(value)
    }
}
