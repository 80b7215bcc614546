import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// System V and POSIX IPC objects, read from /proc/sysvipc and /dev/shm.
enum IPC {
    struct SysVObject: CustomStringConvertible {
        var key: Int32
        var id: Int32
        var perms: Int
        var creator: pid_t
        var kind: String
        var description: String {
            "sysv \(kind) id \(id) key 0x\(String(UInt32(bitPattern: key), radix: 16)) perms \(String(perms, radix: 8))"
        }
    }

    /// The System V key a store named `name` uses (FNV-1a 32 of "dipc:" + name).
    static func key(_ name: String) -> Int32 {
        var h: UInt32 = 2_166_136_261
        for b in ("dipc:" + name).utf8 {
            h ^= UInt32(b)
            h = h &* 16_777_619
        }
        return Int32(bitPattern: h)
    }

    private static func table(_ file: String, kind: String, creatorColumn: Int?) -> [SysVObject] {
        guard let text = procFile(file) else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ")
            guard f.count >= 3, let key = Int64(f[0]), let id = Int32(f[1]), let perms = Int(f[2], radix: 8)
            else { return nil }
            let creator = creatorColumn.flatMap { f.count > $0 ? pid_t(f[$0]) : nil } ?? 0
            return SysVObject(
                key: Int32(truncatingIfNeeded: key), id: id, perms: perms, creator: creator, kind: kind)
        }
    }

    /// Shared-memory segments (key shmid perms size cpid ...).
    static func segments() -> [SysVObject] { table("/proc/sysvipc/shm", kind: "shm", creatorColumn: 4) }
    /// Semaphore sets (key semid perms nsems ...).
    static func semaphores() -> [SysVObject] { table("/proc/sysvipc/sem", kind: "sem", creatorColumn: nil) }

    /// /dev/shm entries whose name contains `fragment`.
    static func devShm(containing fragment: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return names.filter { $0.contains(fragment) }.map { "/dev/shm/" + $0 }
    }

    /// The /dev/shm path of a POSIX shm name such as `/dipc.NAME`.
    static func devShmPath(_ shmName: String) -> String {
        "/dev/shm/" + (shmName.hasPrefix("/") ? String(shmName.dropFirst()) : shmName)
    }

    static func fileMode(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_mode & 0o7777)
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The IPC objects of a store, by the names the conventions give them:
    /// sysv segments and semaphores keyed by the name, /dev/shm entries holding the name,
    /// and the recorded shm name / shm id if given.
    static func storeObjects(name: String, shmName: String? = nil, shmID: Int32? = nil) -> [String] {
        var out: [String] = []
        let k = key(name)
        for o in segments() + semaphores() where o.key == k || (o.kind == "shm" && o.id == shmID) {
            out.append(o.description)
        }
        out += devShm(containing: name)
        if let shmName, !shmName.isEmpty, exists(devShmPath(shmName)), !shmName.contains(name) {
            out.append(devShmPath(shmName))
        }
        return out
    }
}
