@preconcurrency import Glibc
import CEditLine

/// Where `dipc-client shell` gets its lines: libedit (prompt, line editing, history)
/// when stdin and stdout are terminals; otherwise plain lines without a prompt, so
/// that scripted use (`dipc-client shell < commands`) reads exactly what it is given.
final class LineReader {
    /// True when lines come from a person at a terminal (libedit is in use).
    let isInteractive: Bool
    /// The history file (interactive only); nil when there is nowhere to keep it.
    private let historyPath: String?

    private init(interactive: Bool, historyPath: String?) {
        self.isInteractive = interactive
        self.historyPath = historyPath
    }

    /// A reader for this process's stdin.
    static func forStandardInput() -> LineReader {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            return LineReader(interactive: false, historyPath: nil)
        }
        let path = historyFile()
        using_history()
        stifle_history(1000)
        if let path { _ = read_history(path) }
        return LineReader(interactive: true, historyPath: path)
    }

    /// `$DIPC_HISTORY`, else `$HOME/.dipc_history`, else nil.
    static func historyFile() -> String? {
        if let file = getenv("DIPC_HISTORY").map({ String(cString: $0) }), !file.isEmpty { return file }
        if let home = getenv("HOME").map({ String(cString: $0) }), !home.isEmpty { return home + "/.dipc_history" }
        return nil
    }

    /// The next line without its newline, or nil at end of input (Ctrl-D on a terminal).
    func readLine(prompt: String) -> String? {
        guard isInteractive else { return Swift.readLine(strippingNewline: true) }
        guard let raw = readline(prompt) else { return nil }
        defer { free(raw) }
        let line = String(cString: raw)
        if !line.allSatisfy({ $0 == " " || $0 == "\t" }) { add_history(line) }
        return line
    }

    /// Saves the history (best effort: a read-only home loses it, nothing else).
    func close() {
        guard isInteractive, let historyPath else { return }
        _ = write_history(historyPath)
    }
}
