import DIPCCore
import Glibc

/// Where TDB files live, and how big a store's file can get.
enum TDBLocation {
    /// The default home of TDB files, as `dipc` resolves it: `$DIPC_STATE_DIR`, else
    /// `$XDG_STATE_HOME/dipc`, else `~/.local/state/dipc`.
    static func stateDirectory(environment: (String) -> String? = { getenv($0).map { String(cString: $0) } }) -> String {
        if let dir = environment("DIPC_STATE_DIR"), !dir.isEmpty { return dir }
        if let xdg = environment("XDG_STATE_HOME"), !xdg.isEmpty { return xdg + "/dipc" }
        return (environment("HOME") ?? "/tmp") + "/.local/state/dipc"
    }

    /// `path` made absolute against the working directory and lexically normalised
    /// (no empty, `.` or `..` components, no trailing slash).
    static func absolute(_ path: String) -> String {
        var full = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let cwd = getcwd(&buffer, buffer.count) != nil
                ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "/"
            full = cwd + "/" + path
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The directory part of an absolute path.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// Makes sure the directory of `path` (absolute) exists. A missing directory is
    /// created (mode 0700, with its missing parents) only when it is the state
    /// directory or inside it, where default files live; otherwise it is an explicit
    /// `--db` into a missing directory, an error.
    static func prepareDirectory(of path: String, stateDirectory: String) throws {
        let dir = directory(of: path)
        var st = stat()
        do {
            try systemCall("stat") { stat(dir, &st) }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw StoreError.unavailable("the directory of --db \(path) is not a directory")
            }
            return
        } catch let error as SystemError where error.errno != .noSuchFileOrDirectory && error.errno != .notADirectory {
            throw StoreError.unavailable("the directory of --db \(path) is not usable: \(error)")
        } catch is SystemError {
            // Missing: created below when it lies in the state directory.
        }
        let state = absolute(stateDirectory)
        guard dir == state || dir.hasPrefix(state == "/" ? "/" : state + "/") else {
            throw StoreError.unavailable("the directory of --db \(path) does not exist")
        }
        var prefix = ""
        for part in dir.split(separator: "/") {
            prefix += "/" + part
            do {
                try systemCall("mkdir(\(prefix))") { mkdir(prefix, 0o700) }
            } catch let error as SystemError where error.errno == .fileExists {
                continue
            } catch {
                throw StoreError.unavailable("cannot create the state directory \(dir): \(error)")
            }
        }
    }

    /// TDB addresses its file with 32-bit offsets.
    static let fileLimit: UInt64 = 1 << 32

    /// Bytes a full store's file may need, or nil on overflow: every mailbox record at
    /// its largest (TDB's 24-byte record header, the key, our 24-byte record header,
    /// one message, the 4-byte tailer, rounded up), half as much again for free space
    /// left behind as records grow and move, room for a transaction's new copy and
    /// recovery area, and the hash table.
    static func estimatedFileSize(for geometry: StoreGeometry, hashSize: Int) -> UInt64? {
        let record = UInt64(geometry.mailboxSize).addingReportingOverflow(UInt64(24 + 24 + 24 + StoreLayout.messageOverhead + 4 + 8))
        guard !record.overflow else { return nil }
        let data = record.partialValue.multipliedReportingOverflow(by: UInt64(geometry.mailboxes))
        guard !data.overflow else { return nil }
        let withSlack = data.partialValue.addingReportingOverflow(data.partialValue / 2)
        let transaction = record.partialValue.multipliedReportingOverflow(by: 4)
        guard !withSlack.overflow, !transaction.overflow else { return nil }
        let total = withSlack.partialValue.addingReportingOverflow(transaction.partialValue)
        guard !total.overflow else { return nil }
        let all = total.partialValue.addingReportingOverflow(UInt64(hashSize) * 4 + (1 << 20))
        return all.overflow ? nil : all.partialValue
    }

    /// The hash table size for a new file: a prime near the number of mailboxes.
    static func hashSize(for geometry: StoreGeometry) -> Int32 {
        var n = min(max(geometry.mailboxes, 131), 1_000_003)
        while !isPrime(n) { n += 1 }
        return Int32(n)
    }

    private static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        var d = 2
        while d * d <= n {
            if n % d == 0 { return false }
            d += 1
        }
        return true
    }
}
