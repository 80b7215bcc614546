/// One line typed into `dipc-client shell`, parsed.
///
/// Grammar (fields separated by spaces; a trailing `\r` is ignored):
/// - `r N` / `read N`: print mailbox N's value
/// - `w N TEXT...` / `write N TEXT...`: TEXT is the rest of the line after the single
///   space following N, verbatim (spaces included); `w N` alone writes an empty value
/// - `i` / `info`, `s` / `stats`, `q` / `quit`, `help`
/// - an empty or blank line does nothing
/// N is a plain decimal number. Anything else is a `ShellCommand.UsageError`.
public enum ShellCommand: Equatable, Sendable {
    case read(mailbox: Int)
    case write(mailbox: Int, data: [UInt8])
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
          w N TEXT | write N TEXT   set mailbox N to TEXT (the rest of the line, verbatim)
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
            guard args.count == 1 else { throw UsageError(description: "usage: \(word) N") }
            return .read(mailbox: try mailbox(args[0], usage: "\(word) N"))
        case "w", "write":
            rest = rest.drop(while: { $0 == " " || $0 == "\t" })
            let number = rest.prefix(while: { $0 != " " && $0 != "\t" })
            guard !number.isEmpty else { throw UsageError(description: "usage: \(word) N TEXT") }
            let n = try mailbox(number, usage: "\(word) N TEXT")
            var value = rest.dropFirst(number.count)
            if !value.isEmpty { value = value.dropFirst() }  // the one separator after N
            return .write(mailbox: n, data: Array(value.utf8))
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

    private static func mailbox(_ field: Substring, usage: String) throws(UsageError) -> Int {
        guard let value = ReplyParsing.decimal(field), value <= UInt64(Int.max) else {
            throw UsageError(description: "'\(field)' is not a mailbox number (usage: \(usage))")
        }
        return Int(value)
    }
}
