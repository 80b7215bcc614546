import CTDB
import DIPCCore
import Glibc
import Synchronization

/// Identity of a file: device and inode.
struct FileID: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64
}

/// One open `tdb_context` of this process, shared by every `TDBBackend` opened on the
/// same file.
///
/// Why shared: libtdb refuses a second `tdb_open` of a file this process already has
/// open (`EBUSY`), and fcntl locks are per process, so a second descriptor on the
/// file, once closed, would drop the locks the first one holds. So every open of a
/// file in this process goes through `TDBFile.acquire`, which hands out the one
/// context with a reference count; the last `release` closes it.
///
/// A `tdb_context` is not thread-safe: every call on it is made inside `withContext`,
/// which holds this file's mutex. Other processes are ordered by TDB's own fcntl
/// locks (chain locks for reads, the transaction and all-record locks for commits).
final class TDBFile: @unchecked Sendable {
    let path: String
    let id: FileID
    private let context: OpaquePointer
    /// Guards every call on `context`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Number of `acquire`s not yet released; guarded by `registry`.
    private var references = 1

    /// Every file this process has open, by device and inode.
    private static let registry = Mutex<[FileID: TDBFile]>([:])

    private init(path: String, id: FileID, context: OpaquePointer) {
        self.path = path
        self.id = id
        self.context = context
        mutex = .allocate(capacity: 1)
        // A default (non-shared, non-robust) mutex: glibc's init cannot fail.
        errnoReturningCallOrTrap("pthread_mutex_init") { pthread_mutex_init(mutex, nil) }
    }

    deinit {
        errnoReturningCallOrTrap("pthread_mutex_destroy") { pthread_mutex_destroy(mutex) }
        mutex.deallocate()
    }

    /// Opens `path` (absolute), or shares this process's open context of the same file.
    /// With `create` a missing (or empty) file is created mode 0600; an existing non-empty
    /// file is never passed `O_CREAT`, because libtdb would then overwrite one it does
    /// not recognise. Returns nil when the file does not exist and `create` is false.
    static func acquire(path: String, hashSize: Int32, sync: Bool, create: Bool, storeName: String) throws -> TDBFile? {
        try registry.withLock { (files: inout [FileID: TDBFile]) throws -> TDBFile? in
            var st = stat()
            var exists = true
            do {
                try systemCall("stat") { stat(path, &st) }
            } catch let error as SystemError where error.errno == .noSuchFileOrDirectory {
                exists = false
            } catch {
                throw StoreError.corrupt(name: storeName, reason: "cannot use TDB file \(path): \(error)")
            }
            if exists, let file = files[FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))] {
                file.references += 1
                return file
            }
            if !exists && !create { return nil }
            var openFlags = O_RDWR | O_CLOEXEC
            if create && (!exists || st.st_size == 0) { openFlags |= O_CREAT }
            // No nesting: a transaction left open by mistake fails the next start loudly.
            let tdbFlags = Int32(TDB_DEFAULT) | Int32(TDB_DISALLOW_NESTING) | (sync ? 0 : Int32(TDB_NOSYNC))
            errno = 0
            guard let tdb = tdb_open(path, hashSize, tdbFlags, openFlags, 0o600) else {
                let code = errno
                if code == ENOENT && !create { return nil }
                throw openError(path: path, errno: code, storeName: storeName)
            }
            var opened = stat()
            do {
                try systemCall("fstat(\(path))") { fstat(tdb_fd(tdb), &opened) }
            } catch {
                // Nothing was written through this context: closing it can lose nothing.
                ignoringFailure("a context that wrote nothing has nothing to lose") { tdb_close(tdb) }
                throw error
            }
            let file = TDBFile(path: path, id: FileID(device: UInt64(opened.st_dev), inode: UInt64(opened.st_ino)),
                               context: tdb)
            files[file.id] = file
            return file
        }
    }

    private static func openError(path: String, errno code: Int32, storeName: String) -> Error {
        let cause = "\(String(cString: strerror(code))) (errno \(code))"
        switch code {
        case EIO, 0:
            return StoreError.corrupt(name: storeName, reason: "\(path) is not a TDB file or is damaged: \(cause)")
        case ENOENT, ENOTDIR:
            return StoreError.unavailable("cannot open TDB file \(path): \(cause)")
        default:
            return StoreError.corrupt(name: storeName, reason: "cannot open TDB file \(path): \(cause)")
        }
    }

    /// Gives back one `acquire`; the last one closes the context (under the registry's
    /// lock, so that no open of the same file can slip in before it is closed).
    func release() throws {
        let rc = TDBFile.registry.withLock { files -> Int32 in
            references -= 1
            guard references == 0 else { return 0 }
            files[id] = nil
            return withContext { tdb_close($0) }
        }
        if rc != 0 { throw SystemError.last("tdb_close(\(path))") }
    }

    /// Runs `body` with the context, holding this file's mutex.
    func withContext<R>(_ body: (OpaquePointer) throws -> R) rethrows -> R {
        // A default mutex taken and released by this function only: failure is a bug.
        errnoReturningCallOrTrap("pthread_mutex_lock") { pthread_mutex_lock(mutex) }
        defer { errnoReturningCallOrTrap("pthread_mutex_unlock") { pthread_mutex_unlock(mutex) } }
        return try body(context)
    }
}

// MARK: calls on a context (made inside `TDBFile.withContext`)

/// Thin, throwing wrappers over the libtdb calls the backend uses.
enum TDB {
    /// The error for a failed call on `tdb`: TDB's own error, and errno when it says more.
    static func failure(_ call: String, _ tdb: OpaquePointer, path: String) -> SystemError {
        let code = errno
        let what = String(cString: tdb_errorstr(tdb))
        return SystemError("\(call)(\(path)) [\(what)]", errno: code != 0 ? code : EIO)
    }

    /// Runs `body` with `key` as a `TDB_DATA`.
    static func withKey<R>(_ key: String, _ body: (TDB_DATA) throws -> R) rethrows -> R {
        var bytes = Array(key.utf8)
        return try bytes.withUnsafeMutableBufferPointer { try body(TDB_DATA(dptr: $0.baseAddress, dsize: $0.count)) }
    }

    /// Calls `body` with the value of `key` (valid only during the call), or returns nil
    /// when the record does not exist.
    static func read<R>(_ tdb: OpaquePointer, _ key: String, path: String,
                        _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R? {
        var result: Result<R, Error>?
        let rc = withoutActuallyEscaping({ (data: UnsafeRawBufferPointer) in result = Result { try body(data) } }) {
            visit in
            let visitor = RecordVisitor(visit)
            return withKey(key) { k in
                errno = 0
                return tdb_parse_record(tdb, k, { _, data, context in
                    Unmanaged<RecordVisitor>.fromOpaque(context!).takeUnretainedValue()
                        .visit(UnsafeRawBufferPointer(start: data.dptr, count: data.dsize))
                    return 0
                }, Unmanaged.passUnretained(visitor).toOpaque())
            }
        }
        guard let result else {
            if rc != 0 && tdb_error(tdb) != TDB_ERR_NOEXIST { throw failure("tdb_parse_record", tdb, path: path) }
            return nil
        }
        return try result.get()
    }

    static func store(_ tdb: OpaquePointer, _ key: String, _ value: UnsafeRawBufferPointer, flag: Int32,
                      path: String) throws {
        let rc = withKey(key) { k in
            errno = 0
            let data = TDB_DATA(dptr: UnsafeMutablePointer(mutating: value.baseAddress?.assumingMemoryBound(to: UInt8.self)),
                                dsize: value.count)
            return tdb_store(tdb, k, data, flag)
        }
        if rc != 0 { throw failure("tdb_store", tdb, path: path) }
    }

    /// Runs `body` in one transaction, committing when it returns `commit: true` and
    /// cancelling when it returns false or throws. `sync` picks whether the commit fsyncs.
    static func transaction<R>(_ tdb: OpaquePointer, sync: Bool, path: String,
                               _ body: () throws -> (commit: Bool, result: R)) throws -> R {
        // The context may be shared by backends opened with and without --sync.
        if sync { tdb_remove_flags(tdb, UInt32(TDB_NOSYNC)) } else { tdb_add_flags(tdb, UInt32(TDB_NOSYNC)) }
        let started = TDBMetrics.now()
        errno = 0
        guard tdb_transaction_start(tdb) == 0 else { throw failure("tdb_transaction_start", tdb, path: path) }
        let outcome: (commit: Bool, result: R)
        do {
            outcome = try body()
        } catch {
            tdb_transaction_cancel(tdb)
            throw error
        }
        guard outcome.commit else {
            tdb_transaction_cancel(tdb)
            return outcome.result
        }
        errno = 0
        guard tdb_transaction_commit(tdb) == 0 else {
            let error = failure("tdb_transaction_commit", tdb, path: path)
            // libtdb leaves the transaction open when the final sync fails; an open
            // transaction would hold the file's locks and block every process on it.
            if tdb_transaction_active(tdb) { tdb_transaction_cancel(tdb) }
            throw error
        }
        TDBMetrics.recordCommit(since: started)
        return outcome.result
    }

    /// Whether the file holds any record at all.
    static func hasRecords(_ tdb: OpaquePointer) -> Bool {
        let first = tdb_firstkey(tdb)
        guard let pointer = first.dptr else { return false }
        free(pointer)
        return true
    }
}

/// Lets a non-capturing C callback reach a Swift closure through `private_data`.
private final class RecordVisitor {
    let visit: (UnsafeRawBufferPointer) -> Void

    init(_ visit: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.visit = visit
    }
}
