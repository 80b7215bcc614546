import DIPCCore
import Glibc

/// Where servers keep their per-port records and logs: `$DIPC_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/dipc`, else `/tmp/dipc-UID`.
public struct RuntimeDirectory: Sendable {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// The directory the environment names.
    public static func fromEnvironment() -> RuntimeDirectory {
        if let dir = environment("DIPC_RUNTIME_DIR"), !dir.isEmpty { return RuntimeDirectory(path: dir) }
        if let xdg = environment("XDG_RUNTIME_DIR"), !xdg.isEmpty { return RuntimeDirectory(path: xdg + "/dipc") }
        return RuntimeDirectory(path: "/tmp/dipc-\(getuid())")
    }

    public func recordPath(port: Int) -> String { "\(path)/dipc-\(port).record" }
    public func logPath(port: Int) -> String { "\(path)/dipc-\(port).log" }

    /// Where the record of a crashed server (pid `pid`) is kept once a new server has
    /// taken its port, so that `dipcrm PORT` still cleans up what it left behind.
    public func crashedRecordPath(port: Int, pid: Int32) -> String { "\(path)/dipc-\(port).crashed-\(pid).record" }

    /// The records of crashed servers kept for `port` (see `crashedRecordPath`), sorted.
    public func crashedRecordPaths(port: Int) -> [String] {
        let prefix = "dipc-\(port).crashed-"
        return fileNames().filter { $0.hasPrefix(prefix) && $0.hasSuffix(".record") }.sorted().map { "\(path)/\($0)" }
    }

    /// The names of the directory's entries (none when it cannot be read).
    func fileNames() -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            names.append(withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            })
        }
        return names
    }

    /// Creates the directory (and missing parents) with mode 0700. Throws when it
    /// cannot, or when it exists but is not a directory owned by this user.
    public func create() throws {
        try makeDirectories(path, mode: 0o700)
        var st = stat()
        try systemCall("lstat(\(path))") { lstat(path, &st) }
        guard (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid() else {
            throw SystemError("runtime directory \(path) is not a directory owned by uid \(getuid())", errno: .permissionDenied)
        }
    }
}

/// The value of environment variable `name`.
public func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// `mkdir -p` with `mode` for the directories it creates.
public func makeDirectories(_ path: String, mode: mode_t) throws {
    var prefix = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        prefix += "/" + component
        do {
            try systemCall("mkdir(\(prefix))") { mkdir(prefix, mode) }
        } catch let error as SystemError where error.errno == .fileExists {
            continue  // the caller checks that the last one is a usable directory
        }
    }
}
