/// The interactive shell's engine, without terminal I/O: one input line in, the
/// bytes to print out. `dipc-client shell` feeds it stdin line by line.
///
/// Contract:
/// - `execute(_:)` never throws: usage and server/connection errors come back as a
///   one-line `errorText` (starting `dipc-client: `) and the shell goes on.
/// - `r` (and its watch form) and `c` print the value's bytes followed by `\n`; `w`
///   and `p` print the new version;
///   `i` / `s` print `key=value` lines in the server's order.
/// - When the connection was lost, the next command reconnects with `connect`.
/// - `q` (and `finish()`, for end of input) sends `q` if connected, then closes;
///   `Outcome.exit` is true.
public final class DIPCShell {
    /// What to show for one line.
    public struct Outcome: Equatable, Sendable {
        /// Bytes for stdout (may be empty).
        public var output: [UInt8] = []
        /// One line for stderr, without newline, or nil.
        public var errorText: String?
        /// True when the shell should stop.
        public var exit = false
    }

    private let connect: () throws -> DIPCConnection
    private var connection: DIPCConnection?

    /// `connection` is the open connection to start with (nil: connect on first use).
    public init(connection: DIPCConnection?, connect: @escaping () throws -> DIPCConnection) {
        self.connection = connection
        self.connect = connect
    }

    public func execute(_ line: String) -> Outcome {
        let command: ShellCommand
        do {
            command = try ShellCommand.parse(line)
        } catch {
            return Outcome(errorText: "dipc-client: \(error.description)")
        }
        var outcome = Outcome()
        switch command {
        case .empty:
            return outcome
        case .help:
            outcome.output = Array((ShellCommand.helpText + "\n").utf8)
            return outcome
        case .quit:
            return finish()
        default:
            break
        }
        do {
            let conn = try openConnection()
            switch command {
            case .read(let mailbox):
                outcome.output = try conn.read(mailbox).data + [UInt8(ascii: "\n")]
            case .watch(let mailbox, let version, let wait):
                outcome.output = try conn.watch(mailbox, after: version, waitMilliseconds: wait).data + [UInt8(ascii: "\n")]
            case .write(let mailbox, let data):
                outcome.output = Array("\(try conn.write(mailbox, data))\n".utf8)
            case .push(let mailbox, let data):
                outcome.output = Array("\(try conn.push(mailbox, data))\n".utf8)
            case .take(let mailbox, let wait):
                outcome.output = try conn.consume(mailbox, waitMilliseconds: wait).data + [UInt8(ascii: "\n")]
            case .info:
                outcome.output = Self.lines(try conn.infoPairs())
            case .stats:
                outcome.output = Self.lines(try conn.statsPairs())
            case .empty, .help, .quit:
                break
            }
        } catch let error as DIPCClientError {
            outcome.errorText = "dipc-client: \(error.description)"
        } catch {
            outcome.errorText = "dipc-client: \(error)"
        }
        return outcome
    }

    /// Ends the session: sends `q` when connected (errors ignored) and closes.
    public func finish() -> Outcome {
        if let connection, connection.isOpen {
            try? connection.quit()
        }
        connection = nil
        return Outcome(exit: true)
    }

    private func openConnection() throws -> DIPCConnection {
        if let connection, connection.isOpen { return connection }
        connection = nil
        let fresh = try connect()
        connection = fresh
        return fresh
    }

    /// `key=value\n` for each pair.
    static func lines(_ pairs: [(key: String, value: String)]) -> [UInt8] {
        Array(pairs.map { "\($0.key)=\($0.value)\n" }.joined().utf8)
    }
}
