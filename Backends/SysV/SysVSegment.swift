import DIPCCore
import DIPCMapped
import Glibc

/// A System V shared-memory segment (`shmget`/`shmat`), mode 0600, keyed by the
/// store name (`StoreName.hash`).
public final class SysVSegment: SharedSegment {
    public let id: Int32
    public let key: key_t
    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let created: Bool
    private var mapped = true

    /// The IPC key of store `name` (never `IPC_PRIVATE`).
    public static func key(for name: String) -> key_t {
        let hash = key_t(bitPattern: StoreName.hash(name))
        return hash == IPC_PRIVATE ? 1 : hash
    }

    /// Attaches the segment of store `name`, creating it with `size` bytes when it does
    /// not exist and `create` is true. Returns nil when it does not exist and `create`
    /// is false. An existing segment is attached at its own size.
    public static func open(name: String, size: Int, create: Bool) throws -> SysVSegment? {
        let key = key(for: name)
        while true {
            if create {
                let id = shmget(key, size, IPC_CREAT | IPC_EXCL | 0o600)
                if id >= 0 { return try SysVSegment(id: id, key: key, created: true) }
                let code = errno
                if code != EEXIST { throw creationError(code, size: size) }
            }
            let id = shmget(key, 0, 0)
            if id >= 0 {
                do {
                    return try SysVSegment(id: id, key: key, created: false)
                } catch let error as SystemError where error.errno == EIDRM || error.errno == EINVAL {
                    continue  // removed between shmget and shmat: look again
                }
            }
            let code = errno
            if code == ENOENT {
                if create { continue }  // removed after our EEXIST: create it again
                return nil
            }
            throw SystemError("shmget", errno: code)
        }
    }

    private static func creationError(_ code: Int32, size: Int) -> Error {
        switch code {
        case EINVAL:
            let limit = readSmallFile("/proc/sys/kernel/shmmax")?.split(separator: "\n").first ?? "?"
            return StoreError.tooLarge("a System V segment of \(size) bytes exceeds the kernel limit (kernel.shmmax = \(limit)); \(SystemError("shmget", errno: code))")
        case ENOSPC, ENOMEM:
            return StoreError.tooLarge("the kernel cannot hold a System V segment of \(size) bytes (kernel.shmall / shmmni / memory); \(SystemError("shmget", errno: code))")
        default:
            return SystemError("shmget", errno: code)
        }
    }

    private init(id: Int32, key: key_t, created: Bool) throws {
        var ds = shmid_ds()
        if shmctl(id, IPC_STAT, &ds) != 0 {
            let error = SystemError.last("shmctl(IPC_STAT)")
            if created { shmctl(id, IPC_RMID, nil) }
            throw error
        }
        guard let pointer = shmat(id, nil, 0), Int(bitPattern: pointer) != -1 else {
            let error = SystemError.last("shmat")
            if created { shmctl(id, IPC_RMID, nil) }
            throw error
        }
        self.id = id
        self.key = key
        self.base = pointer
        self.size = Int(ds.shm_segsz)
        self.created = created
    }

    public var recordFields: [(String, String)] {
        [("shm_id", String(id)), ("shm_key", String(format32: UInt32(bitPattern: key)))]
    }

    /// The segment's creator (`shm_cpid`) is a running process. A pid reused by
    /// another process reads as alive, which only delays the cleanup.
    public var creatorIsAlive: Bool {
        var ds = shmid_ds()
        guard shmctl(id, IPC_STAT, &ds) == 0 else { return errno != EIDRM && errno != EINVAL }
        return ProcessIdentity.lookup(ds.shm_cpid) != .gone
    }

    public func unmap() {
        if mapped {
            shmdt(base)
            mapped = false
        }
    }

    public func remove() throws {
        if shmctl(id, IPC_RMID, nil) != 0 && errno != EINVAL && errno != EIDRM {
            throw SystemError.last("shmctl(IPC_RMID)")
        }
    }

    /// Removes segment `id` if it still exists (cleanup after a crash). Returns whether it did.
    @discardableResult
    public static func remove(id: Int32) -> Bool {
        shmctl(id, IPC_RMID, nil) == 0
    }

    deinit { unmap() }
}

extension String {
    /// `0x` and eight hex digits.
    init(format32 value: UInt32) {
        let hex = String(value, radix: 16)
        self = "0x" + String(repeating: "0", count: 8 - hex.count) + hex
    }
}
