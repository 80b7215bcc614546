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
                do {
                    let id = try systemCall("shmget") { shmget(key, size, IPC_CREAT | IPC_EXCL | 0o600) }
                    return try SysVSegment(id: id, key: key, created: true)
                } catch let error as SystemError where error.call == "shmget" {
                    if error.errno != .fileExists { throw creationError(error, size: size) }
                }
            }
            do {
                let id = try systemCall("shmget") { shmget(key, 0, 0) }
                return try SysVSegment(id: id, key: key, created: false)
            } catch let error as SystemError where error.call == "shmat" || error.call == "shmctl(IPC_STAT)" {
                // Removed between shmget and shmat: look again.
                if error.errno == .identifierRemoved || error.errno == .invalidArgument { continue }
                throw error
            } catch let error as SystemError where error.errno == .noSuchFileOrDirectory {
                if create { continue }  // removed after our EEXIST: create it again
                return nil
            }
        }
    }

    private static func creationError(_ error: SystemError, size: Int) -> Error {
        switch error.errno {
        case .invalidArgument:
            let limit = readSmallFile("/proc/sys/kernel/shmmax")?.split(separator: "\n").first ?? "?"
            return StoreError.tooLarge("a System V segment of \(size) bytes exceeds the kernel limit (kernel.shmmax = \(limit)); \(error)")
        case .noSpace, .noMemory:
            return StoreError.tooLarge("the kernel cannot hold a System V segment of \(size) bytes (kernel.shmall / shmmni / memory); \(error)")
        default:
            return error
        }
    }

    private init(id: Int32, key: key_t, created: Bool) throws {
        var ds = shmid_ds()
        do {
            try systemCall("shmctl(IPC_STAT)") { shmctl(id, IPC_STAT, &ds) }
        } catch {
            if created { SysVSegment.removeAfterFailedCreation(id) }
            throw error
        }
        // shmat reports failure as (void *)-1, and never EINTR.
        guard let pointer = shmat(id, nil, 0), Int(bitPattern: pointer) != -1 else {
            let error = SystemError.last("shmat")
            if created { SysVSegment.removeAfterFailedCreation(id) }
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
    /// A segment that is gone counts as a dead creator; one that cannot be looked at for
    /// another reason (EACCES) as a live one, so it is never removed under its creator.
    public var creatorIsAlive: Bool {
        var ds = shmid_ds()
        do {
            try systemCall("shmctl(IPC_STAT)") { shmctl(id, IPC_STAT, &ds) }
        } catch let error as SystemError {
            return error.errno != .identifierRemoved && error.errno != .invalidArgument
        } catch {
            return true
        }
        return ProcessIdentity.lookup(ds.shm_cpid) != .gone
    }

    /// Detaches the segment (once). `shmdt` of an address this object attached cannot
    /// fail but through a bug, which traps.
    public func unmap() {
        if mapped {
            do {
                try systemCall("shmdt") { shmdt(base) }
            } catch {
                preconditionFailure("\(error)")
            }
            mapped = false
        }
    }

    public func remove() throws {
        do {
            try systemCall("shmctl(IPC_RMID)") { shmctl(id, IPC_RMID, nil) }
        } catch let error as SystemError where error.errno == .invalidArgument || error.errno == .identifierRemoved {
            return  // removed already
        }
    }

    /// Removes a segment this process just created and could not attach. Ignoring a
    /// failure is harmless: the segment is unformatted, and the next opener of the
    /// store finds it abandoned (its creator gone) and removes it.
    private static func removeAfterFailedCreation(_ id: Int32) {
        ignoringFailure("an abandoned unformatted segment is removed by the next opener") { shmctl(id, IPC_RMID, nil) }
    }

    /// Removes segment `id` if it still exists (cleanup after a crash). Returns whether
    /// it did; false when it is gone already or cannot be removed (not this user's).
    @discardableResult
    public static func remove(id: Int32) -> Bool {
        (try? systemCall("shmctl(IPC_RMID)", { shmctl(id, IPC_RMID, nil) })) != nil
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
