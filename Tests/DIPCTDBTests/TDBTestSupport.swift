import CTDB
import DIPCCore
import Foundation
import Glibc

@testable import DIPCTDB

/// A temporary directory for one test, and every TDB control object opened under it,
/// removed by `cleanUp` (call it in `defer`).
final class TDBScratch: @unchecked Sendable {
    let dir: String
    private var controlNames: Set<String> = []
    private var backends: [BlockBackend] = []

    init() throws {
        var template = Array("/tmp/dipc-tdb-test-\(getpid())-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemError.last("mkdtemp") }
        dir = String(cString: made)
    }

    func path(_ file: String) -> String { dir + "/" + file }

    /// Opens a backend on `file` (relative to the scratch directory unless absolute),
    /// remembering it for clean-up.
    func open(_ file: String, _ geometry: StoreGeometry, name: String = "t", policy: CoordinatorPolicy? = nil,
              sync: Bool = false, create: Bool = true, stateDirectory: String? = nil) throws -> TDBBlockBackend? {
        let full = file.hasPrefix("/") ? file : path(file)
        let backend = try TDBBackend.open(name: name, geometry: geometry, policy: policy, databasePath: full, sync: sync,
                                          create: create, stateDirectory: stateDirectory ?? dir + "/state-not-used")
        if let backend {
            controlNames.insert(backend.controlSegment.objectName)
            backends.append(backend)
        }
        return backend
    }

    /// The control object name the backend derives for `file`.
    func controlName(_ file: String) -> String? {
        var st = stat()
        guard stat(path(file), &st) == 0 else { return nil }
        return TDBBackend.controlObjectName(for: FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
    }

    func cleanUp() {
        for backend in backends { try? backend.close(removing: false) }
        for name in controlNames { shm_unlink(name) }
        try? FileManager.default.removeItem(atPath: dir)
    }
}

func devShmExists(_ objectName: String) -> Bool {
    FileManager.default.fileExists(atPath: "/dev/shm" + objectName)
}

func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o777
}

extension BlockBackend {
    func write(_ mailbox: Int, _ text: String) throws -> UInt64 {
        try Array(text.utf8).withUnsafeBytes { try replace(mailbox, with: $0) }
    }

    func push(_ mailbox: Int, _ bytes: [UInt8]) throws -> UInt64? {
        try bytes.withUnsafeBytes { try append(mailbox, $0) }
    }

    func push(_ mailbox: Int, _ text: String) throws -> UInt64? {
        try push(mailbox, Array(text.utf8))
    }

    func read(_ mailbox: Int) throws -> (text: String, version: UInt64) {
        var buffer: [UInt8] = []
        let version = try readNewest(mailbox, into: &buffer)
        return (String(decoding: buffer, as: UTF8.self), version)
    }

    func take(_ mailbox: Int) throws -> (text: String, version: UInt64)? {
        var buffer: [UInt8] = []
        guard let version = try takeOldest(mailbox, into: &buffer) else { return nil }
        return (String(decoding: buffer, as: UTF8.self), version)
    }
}

/// Raw libtdb access to a file no backend of this process has open.
enum RawTDB {
    static func withFile<R>(_ path: String, create: Bool = false, _ body: (OpaquePointer) throws -> R) throws -> R {
        let flags = O_RDWR | (create ? O_CREAT : 0)
        guard let tdb = tdb_open(path, 0, Int32(TDB_DEFAULT), flags, 0o600) else { throw SystemError.last("tdb_open") }
        defer { tdb_close(tdb) }
        return try body(tdb)
    }

    static func store(_ tdb: OpaquePointer, _ key: String, _ value: [UInt8]) -> Int32 {
        var k = Array(key.utf8)
        var v = value
        return k.withUnsafeMutableBufferPointer { kp in
            v.withUnsafeMutableBufferPointer { vp in
                tdb_store(tdb, TDB_DATA(dptr: kp.baseAddress, dsize: kp.count),
                          TDB_DATA(dptr: vp.baseAddress, dsize: vp.count), Int32(TDB_REPLACE))
            }
        }
    }
}

/// Runs `executable` with `arguments`; returns its exit status and output.
func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
