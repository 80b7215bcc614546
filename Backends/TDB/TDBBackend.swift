import CTDB
import DIPCCore
import DIPCMapped
import Glibc
import Synchronization

/// The TDB backend: mailboxes persist in a TDB file (Samba's trivial database).
///
/// - The file holds a `dipc:header` record (magic, format, geometry) and one record
///   per written mailbox (`m:N`: version, then the message list); `TDBRecords`
///   describes the bytes. A new file gets its header in a transaction; an existing
///   file must carry the same geometry.
/// - Every change is one TDB transaction (fetch, store, commit), so a process killed
///   at any instant leaves each record either old or new; TDB replays its recovery
///   area on the next open or lock. Commits skip fsync (`TDB_NOSYNC`) unless `sync`.
/// - The store header and the coordinator live in a POSIX shm object named after the
///   file's device and inode (`/dipc.tdb.DEV.INODE`), so every server on the same
///   file, whatever path it was given, shares one coordinator.
/// - Calls on the file are serialised per process (`TDBFile`); other processes are
///   ordered by TDB's fcntl locks.
/// - Reads are served from a copy of each mailbox's newest message in the control map
///   whenever it is current (`TDBReadMirror`), else from the file.
public enum TDBBackend {
    /// Opens store `name` kept in the TDB file at `databasePath` (creating the file when
    /// `create` is true and it is missing). Nil when `create` is false and the store's
    /// shared control map does not exist (no server attached, nothing to clean).
    /// A new file records `policy`; an existing file that recorded another policy is
    /// refused (`StoreError.coordinatorMismatch`), even when no server is attached. A nil
    /// `policy` records and checks nothing.
    public static func open(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy? = nil,
                            databasePath: String, sync: Bool, create: Bool) throws -> BlockBackend? {
        try open(name: name, geometry: geometry, policy: policy, databasePath: databasePath, sync: sync,
                 create: create, stateDirectory: TDBLocation.stateDirectory())
    }

    /// Where store `name`'s file lives without `--db`: `NAME.tdb` in `$DIPC_STATE_DIR`,
    /// else `$XDG_STATE_HOME/dipc`, else `~/.local/state/dipc`.
    public static func defaultDatabasePath(name: String) -> String {
        TDBLocation.stateDirectory() + "/\(name).tdb"
    }

    /// `path` as the backend records it: absolute (against the working directory) and
    /// lexically normalised.
    public static func absolutePath(_ path: String) -> String { TDBLocation.absolute(path) }

    /// The shm object holding the control region of the TDB file with this identity.
    static func controlObjectName(for id: FileID) -> String {
        "/dipc.tdb.\(id.device).\(id.inode)"
    }

    /// `open`, with the state directory (where missing directories may be created) given.
    static func open(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy? = nil, databasePath: String,
                     sync: Bool, create: Bool, stateDirectory: String) throws -> TDBBlockBackend? {
        let hashSize = TDBLocation.hashSize(for: geometry)
        let estimate = TDBLocation.estimatedFileSize(for: geometry, hashSize: Int(hashSize))
        guard let estimate, estimate <= TDBLocation.fileLimit else {
            let needed = estimate.map { "\($0) bytes" } ?? "more than 2^64 bytes"
            throw StoreError.tooLarge("\(geometry) needs a TDB file of up to \(needed), which exceeds TDB's 4 GiB file limit")
        }
        let path = TDBLocation.absolute(databasePath)
        let controlSize = TDBReadMirror.controlSize(for: geometry)

        if !create {
            // Cleaning up after a crash: without the control map there is nothing to do.
            var st = stat()
            do {
                try systemCall("stat(\(path))") { stat(path, &st) }
            } catch let error as SystemError where error.errno == .noSuchFileOrDirectory || error.errno == .notADirectory {
                return nil
            }
            let id = FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            guard let control = try POSIXSegment.open(objectName: controlObjectName(for: id), size: controlSize,
                                                      create: false) else { return nil }
            do {
                guard let file = try TDBFile.acquire(path: path, hashSize: hashSize, sync: sync, create: false,
                                                     storeName: name) else {
                    control.unmap()
                    return nil
                }
                return try finishOpen(name: name, geometry: geometry, policy: policy, file: file, control: control,
                                      sync: sync, create: false)
            } catch {
                control.unmap()
                throw error
            }
        }

        try TDBLocation.prepareDirectory(of: path, stateDirectory: stateDirectory)
        guard let file = try TDBFile.acquire(path: path, hashSize: hashSize, sync: sync, create: true, storeName: name)
        else { throw StoreError.unavailable("cannot create TDB file \(path)") }
        let control: POSIXSegment
        do {
            try prepareHeader(file: file, geometry: geometry, policy: policy, name: name, sync: sync, create: true)
            control = try POSIXSegment.open(objectName: controlObjectName(for: file.id), size: controlSize, create: true)!
        } catch {
            try? file.release()
            throw error
        }
        do {
            return try finishOpen(name: name, geometry: geometry, policy: policy, file: file, control: control,
                                  sync: sync, create: true)
        } catch {
            control.unmap()
            if control.created { try? control.remove() }
            throw error
        }
    }

    /// Checks the file's header and the control map's size, then wraps both. Releases
    /// `file` when it throws (the caller disposes of `control`).
    private static func finishOpen(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy?, file: TDBFile,
                                   control: POSIXSegment, sync: Bool, create: Bool) throws -> TDBBlockBackend {
        do {
            if !create {
                try prepareHeader(file: file, geometry: geometry, policy: policy, name: name, sync: sync, create: false)
            }
            let needed = TDBReadMirror.controlSize(for: geometry)
            if control.size < needed {
                // Made by a server of another geometry: say which, when its header is readable.
                if control.size >= StoreLayout.headerSize {
                    let header = StoreHeader(at: control.base)
                    let (mailboxes, size) = header.storedGeometry
                    if header.storedMagic == StoreHeader.magic, mailboxes > 0, size > 0 {
                        throw StoreError.geometryMismatch(
                            name: name,
                            existing: StoreGeometry(mailboxes: Int(clamping: mailboxes), mailboxSize: Int(clamping: size)),
                            requested: geometry)
                    }
                }
                throw StoreError.corrupt(
                    name: name, reason: "its control map \(control.objectName) has \(control.size) bytes, \(geometry) needs \(needed)")
            }
            let backend = TDBBlockBackend(name: name, geometry: geometry, file: file, controlSegment: control, sync: sync)
            // A new control map is seen by nobody else until formatted, and no other
            // server has the file open (it would hold the map): copy what the file holds.
            if control.created { backend.fillReadMirror() }
            return backend
        } catch {
            try? file.release()
            throw error
        }
    }

    /// Validates the file's DIPC header; writes it (in a transaction) into a file that
    /// has no records yet when `create`.
    private static func prepareHeader(file: TDBFile, geometry: StoreGeometry, policy: CoordinatorPolicy?, name: String,
                                      sync: Bool, create: Bool) throws {
        let path = file.path
        let validate = { (bytes: UnsafeRawBufferPointer) throws in
            try TDBRecords.validateHeader(bytes, geometry: geometry, policy: policy, name: name, path: path)
        }
        try file.withContext { tdb in
            if try TDB.read(tdb, TDBRecords.headerKey, path: path, validate) != nil { return }
            guard create else {
                throw StoreError.corrupt(name: name, reason: "\(path) has no DIPC header record")
            }
            try TDB.transaction(tdb, sync: sync, path: path) {
                // Another server may have written it since the look above.
                if try TDB.read(tdb, TDBRecords.headerKey, path: path, validate) != nil { return (false, ()) }
                guard !TDB.hasRecords(tdb) else {
                    throw StoreError.corrupt(name: name, reason: "\(path) is a TDB file with other records and no DIPC header")
                }
                try TDBRecords.encodeHeader(geometry, policy: policy).withUnsafeBytes {
                    try TDB.store(tdb, TDBRecords.headerKey, $0, flag: TDB_INSERT, path: path)
                }
                return (true, ())
            }
        }
    }
}

/// A store in a TDB file; see `TDBBackend`.
/// Thread-safe: every call on the file holds its mutex (`TDBFile`).
final class TDBBlockBackend: BlockBackend, @unchecked Sendable {
    /// Test-only pause mid-copy (debug builds, `DIPC_TEST_HOLD`).
    private let holdPoints = HoldPoints()
    let name: String
    let geometry: StoreGeometry
    let file: TDBFile
    let controlSegment: POSIXSegment
    let sync: Bool
    private let closed = Atomic<Bool>(false)
    private let mirror: TDBReadMirror

    init(name: String, geometry: StoreGeometry, file: TDBFile, controlSegment: POSIXSegment, sync: Bool) {
        self.name = name
        self.geometry = geometry
        self.file = file
        self.controlSegment = controlSegment
        self.sync = sync
        mirror = TDBReadMirror(control: controlSegment.base, geometry: geometry)
    }

    /// Copies every mailbox's newest message from the file into the read mirror (on a
    /// control map this process just created). A record that cannot be read leaves its
    /// copy stale: reading that mailbox reports the damage, as it would without copies.
    func fillReadMirror() {
        for mailbox in 0..<geometry.mailboxes {
            try? file.withContext { tdb in
                try withMailbox(tdb, mailbox) { mirror.publish(mailbox, version: $0.version, newest: $0.newest) }
            }
        }
    }

    var control: UnsafeMutableRawPointer { controlSegment.base }
    var creatorIsAlive: Bool { controlSegment.creatorIsAlive }
    func creationFinished() { controlSegment.creationFinished() }
    var createdControl: Bool { controlSegment.created }
    var recordFields: [(String, String)] { [("db", file.path), ("shm_name", controlSegment.objectName)] }

    // MARK: records

    private func damaged(_ mailbox: Int) -> Error {
        StoreError.corrupt(name: name, reason: "record \(TDBRecords.mailboxKey(mailbox)) of \(file.path) is damaged")
    }

    /// Calls `body` with mailbox `mailbox` as stored (an empty list at version 0 when it
    /// has no record); the list is valid only during the call.
    private func withMailbox<R>(_ tdb: OpaquePointer, _ mailbox: Int, _ body: (TDBRecords.Mailbox) throws -> R) throws -> R {
        let found = try TDB.read(tdb, TDBRecords.mailboxKey(mailbox), path: file.path) { bytes in
            try body(TDBRecords.decodeMailbox(bytes, geometry: geometry, damaged: { damaged(mailbox) }))
        }
        if let found { return found }
        return try body(TDBRecords.Mailbox(version: 0, count: 0, newestOffset: 0, list: UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    /// Runs one change of `mailbox` as a transaction: `body` gets the current content and
    /// returns the new record and version, or nil to change nothing.
    private func change(_ mailbox: Int, _ body: (TDBRecords.Mailbox) throws -> (record: [UInt8], version: UInt64)?) throws
        -> UInt64?
    {
        let key = TDBRecords.mailboxKey(mailbox)
        var committed: [UInt8] = []
        let version = try file.withContext { tdb in
            try TDB.transaction(tdb, sync: sync, path: file.path) { () -> (commit: Bool, result: UInt64?) in
                guard let (record, version) = try withMailbox(tdb, mailbox, body) else { return (false, nil) }
                mirror.markStale(mailbox)  // before anything of the change can reach the file
                try record.withUnsafeBytes { try TDB.store(tdb, key, $0, flag: TDB_REPLACE, path: file.path) }
                holdPoints.reach(.midCopy, mailbox: mailbox)  // stored, not yet committed
                committed = record
                return (true, version)
            }
        }
        if let version {
            // Committed: the record just written is the mailbox's content now (it decodes:
            // this process encoded it; were it not to, the copy simply stays stale).
            committed.withUnsafeBytes { bytes in
                guard let current = try? TDBRecords.decodeMailbox(bytes, geometry: geometry, damaged: { damaged(mailbox) }) else { return }
                mirror.publish(mailbox, version: version, newest: current.newest)
            }
        }
        return version
    }

    private static func withLength<R>(of data: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var length = UInt64(data.count).littleEndian
        return try withUnsafeBytes(of: &length, body)
    }

    // MARK: BlockBackend

    func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        if let version = mirror.readNewest(mailbox, into: &buffer) { return version }
        return try file.withContext { tdb in
            try withMailbox(tdb, mailbox) { current in
                buffer.removeAll(keepingCapacity: true)
                if current.count > 0 { buffer.append(contentsOf: current.message(at: current.newestOffset)) }
                return current.version
            }
        }
    }

    func version(of mailbox: Int) throws -> UInt64 {
        if let version = mirror.version(of: mailbox) { return version }
        return try file.withContext { tdb in
            try TDB.read(tdb, TDBRecords.mailboxKey(mailbox), path: file.path) { bytes in
                try TDBRecords.version(bytes, damaged: { damaged(mailbox) })
            } ?? 0
        }
    }

    func replace(_ mailbox: Int, with data: UnsafeRawBufferPointer) throws -> UInt64 {
        let key = TDBRecords.mailboxKey(mailbox)
        let version = try file.withContext { tdb in
            try TDB.transaction(tdb, sync: sync, path: file.path) {
                // Only the old version matters, so a replace also mends a damaged list.
                let old = try TDB.read(tdb, key, path: file.path) { try TDBRecords.version($0, damaged: { damaged(mailbox) }) }
                let version = (old ?? 0) + 1
                let record = Self.withLength(of: data) { length in
                    TDBRecords.encodeMailbox(version: version, count: 1, newestOffset: 0, pieces: [length, data])
                }
                mirror.markStale(mailbox)  // before anything of the change can reach the file
                try record.withUnsafeBytes { try TDB.store(tdb, key, $0, flag: TDB_REPLACE, path: file.path) }
                holdPoints.reach(.midCopy, mailbox: mailbox)  // stored, not yet committed
                return (true, version)
            }
        }
        mirror.publish(mailbox, version: version, newest: data)  // committed
        return version
    }

    func append(_ mailbox: Int, _ data: UnsafeRawBufferPointer) throws -> UInt64? {
        try change(mailbox) { current in
            guard StoreLayout.fits(used: current.list.count, adding: data.count, in: geometry) else { return nil }
            let version = current.version + 1
            let record = Self.withLength(of: data) { length in
                TDBRecords.encodeMailbox(version: version, count: current.count + 1, newestOffset: current.list.count,
                                         pieces: [current.list, length, data])
            }
            return (record, version)
        }
    }

    func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? {
        try change(mailbox) { current in
            guard current.count > 0 else { return nil }
            let oldest = current.message(at: 0)
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: oldest)
            let taken = StoreLayout.messageOverhead + oldest.count
            let version = current.version + 1
            let rest = UnsafeRawBufferPointer(rebasing: current.list[taken...])
            let record = TDBRecords.encodeMailbox(
                version: version, count: current.count - 1,
                newestOffset: current.count > 1 ? current.newestOffset - taken : 0, pieces: [rest])
            return (record, version)
        }
    }

    func queueState(_ mailbox: Int) throws -> QueueState {
        try file.withContext { tdb in
            try withMailbox(tdb, mailbox) { QueueState(count: $0.count, usedBytes: $0.list.count) }
        }
    }

    func close(removing: Bool) throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var failure: Error?
        do { try file.release() } catch { failure = error }
        controlSegment.unmap()
        if removing {
            do { try controlSegment.remove() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    deinit {
        if !closed.load(ordering: .acquiring) { try? file.release() }
    }
}
