import DIPCCore
import DIPCPOSIX
import DIPCSysV
import DIPCTDB
import DIPCTestSupport
import Glibc
import Testing

/// The backends under test. A new backend is one case and one factory away from the
/// whole conformance suite.
enum BackendUnderTest: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inMemory, sysv, posix, tdb

    var testDescription: String { rawValue }

    var factory: BackendFactory {
        switch self {
        case .inMemory: return .inMemory
        case .sysv: return Factories.sysv
        case .posix: return Factories.posix
        case .tdb: return Factories.tdb
        }
    }
}

/// Factories for the real backends, with leak detection and cleanup that touch only
/// the objects of the store names the suite made up.
enum Factories {
    // MARK: System V

    static let sysv = BackendFactory(
        name: "sysv",
        open: { name, geometry, create in try SysVBackend.open(name: name, geometry: geometry, create: create) },
        leftovers: { name in
            let key = SysVSegment.key(for: name)
            return sysvObjects(key: key)
        },
        cleanup: { name in
            let id = shmget(SysVSegment.key(for: name), 0, 0)
            if id >= 0 { shmctl(id, IPC_RMID, nil) }
        })

    /// Segments and semaphore sets with `key`, from /proc/sysvipc (a removed segment
    /// that is still attached shows key 0 there, so it no longer counts).
    static func sysvObjects(key: key_t) -> [String] {
        var found: [String] = []
        for (file, kind) in [("/proc/sysvipc/shm", "shm"), ("/proc/sysvipc/sem", "sem")] {
            guard let text = readSmallFile(file) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count >= 2, let k = Int64(fields[0]), Int32(truncatingIfNeeded: k) == key else { continue }
                found.append("System V \(kind) id \(fields[1]) key \(key)")
            }
        }
        return found
    }

    // MARK: POSIX

    static let posix = BackendFactory(
        name: "posix",
        open: { name, geometry, create in try POSIXBackend.open(name: name, geometry: geometry, create: create) },
        leftovers: { name in
            let path = "/dev/shm" + POSIXBackend.objectName(for: name)
            return exists(path) ? [path] : []
        },
        cleanup: { name in _ = shm_unlink(POSIXBackend.objectName(for: name)) })

    // MARK: TDB

    /// The private directory of store `name`'s TDB file (made by the first open, removed by cleanup).
    static func tdbDirectory(_ name: String) -> String {
        let tmp = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        return "\(tmp.isEmpty ? "/tmp" : tmp)/dipc-conformance-\(name)"
    }

    static func tdbPath(_ name: String) -> String { "\(tdbDirectory(name))/\(name).tdb" }

    /// The coordinator map of the TDB file of store `name` (`/dipc.tdb.DEV.INODE`), when the file exists.
    static func tdbMap(_ name: String) -> String? {
        var st = stat()
        guard stat(tdbPath(name), &st) == 0 else { return nil }
        return "/dipc.tdb.\(UInt64(st.st_dev)).\(UInt64(st.st_ino))"
    }

    /// Files in store `name`'s directory other than its data file.
    static func tdbStrayFiles(_ name: String) -> [String] {
        guard let dir = opendir(tdbDirectory(name)) else { return [] }
        defer { closedir(dir) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let file = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if file != ".", file != "..", file != name + ".tdb" { found.append("\(tdbDirectory(name))/\(file)") }
        }
        return found
    }

    static let tdb = BackendFactory(
        name: "tdb", persistent: true,
        open: { name, geometry, create in
            if create { mkdir(tdbDirectory(name), 0o700) }
            return try TDBBackend.open(name: name, geometry: geometry, databasePath: tdbPath(name), sync: false, create: create)
        },
        leftovers: { name in
            var left = tdbStrayFiles(name)
            if let map = tdbMap(name), exists("/dev/shm" + map) { left.append("/dev/shm" + map) }
            return left
        },
        cleanup: { name in
            if let map = tdbMap(name) { shm_unlink(map) }
            for file in tdbStrayFiles(name) { unlink(file) }
            unlink(tdbPath(name))
            rmdir(tdbDirectory(name))
        })

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }
}
