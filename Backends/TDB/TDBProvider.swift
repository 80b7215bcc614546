import ArgumentParser
import DIPCBackendProvider
import DIPCCore
import Glibc

/// `--backend tdb`: the mailboxes persist in a TDB file (`--db`, `--sync`); the
/// coordinator lives in a POSIX shm map named after the file.
public struct TDBProvider: BackendProvider {
    public static let name = "tdb"

    @Option(help: "(tdb) The database file. (default: $DIPC_STATE_DIR/NAME.tdb)") public var db: String?
    @Flag(help: "(tdb) fsync every committed write.") public var sync = false

    public init() {}

    public var givenOptions: [String] { (db != nil ? ["--db"] : []) + (sync ? ["--sync"] : []) }

    public func store(for request: StoreRequest) throws -> any BackendStore {
        Self.store(request, path: db ?? TDBBackend.defaultDatabasePath(name: request.name), sync: sync)
    }

    public static func store(for request: StoreRequest, record field: (String) -> String?) -> any BackendStore {
        // Records name the file absolute, from the first record on.
        store(request, path: field("db") ?? TDBBackend.defaultDatabasePath(name: request.name), sync: false)
    }

    /// The store in `directory/NAME/NAME.tdb` (the directory made on the first open).
    /// Its backend records and checks no coordinator policy, so that the conformance
    /// suite can reopen it under another one and see the store header refuse it.
    public static func scratchStore(for request: StoreRequest, directory: String) -> any BackendStore {
        let folder = "\(directory)/\(request.name)"
        let path = "\(folder)/\(request.name).tdb"
        return CoordinatedStore(
            request: request, persistent: true, removes: "the coordinator map; the TDB file is kept",
            openBackend: { create in
                if create { ignoringFailure("an existing folder is fine; a missing one fails the open") { mkdir(folder, 0o700) } }
                return try TDBBackend.open(name: request.name, geometry: request.geometry, databasePath: path,
                                           sync: false, create: create)
            },
            leftovers: {
                var left = strayFiles(in: folder, keeping: path)
                if let map = controlMap(of: path), exists("/dev/shm" + map) { left.append("/dev/shm" + map) }
                return left
            },
            destroy: {
                ignoringFailure("destroying is best effort: leftovers() shows what remains") {
                    if let map = controlMap(of: path) { shm_unlink(map) }
                    for file in strayFiles(in: folder, keeping: path) { unlink(file) }
                    unlink(path)
                    return rmdir(folder)
                }
            })
    }

    private static func store(_ request: StoreRequest, path: String, sync: Bool) -> CoordinatedStore {
        CoordinatedStore(
            request: request, recordFields: [("db", TDBBackend.absolutePath(path))], persistent: true,
            removes: "the coordinator map; the TDB file is kept",
            openBackend: { create in
                try TDBBackend.open(name: request.name, geometry: request.geometry, policy: request.policy,
                                    databasePath: path, sync: sync, create: create)
            },
            leftovers: {
                guard let map = controlMap(of: path), exists("/dev/shm" + map) else { return [] }
                return ["/dev/shm" + map]
            },
            destroy: {
                ignoringFailure("destroying is best effort: leftovers() shows what remains") {
                    if let map = controlMap(of: path) { shm_unlink(map) }
                    return unlink(path)
                }
            })
    }

    /// The coordinator map of the TDB file at `path` (`/dipc.tdb.DEV.INODE`), when the file exists.
    static func controlMap(of path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return TDBBackend.controlObjectName(for: FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
    }

    /// Files in `folder` other than `path`.
    static func strayFiles(in folder: String, keeping path: String) -> [String] {
        guard let dir = opendir(folder) else { return [] }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if file != ".", file != "..", "\(folder)/\(file)" != path { found.append("\(folder)/\(file)") }
        }
        return found
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
