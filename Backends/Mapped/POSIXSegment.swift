import DIPCCore
import Glibc

/// A POSIX shared-memory object (`shm_open` + `mmap(MAP_SHARED)`), mode 0600,
/// visible as `/dev/shm/<name without its slash>` while it exists.
///
/// Its creator holds an exclusive `flock` on the object from `shm_open` until
/// `creationFinished`, so other openers can tell a creator that is still sizing or
/// formatting it from one that died doing so (the lock is gone with the process).
public final class POSIXSegment: SharedSegment {
    /// The object name, such as `/dipc.NAME`.
    public let objectName: String
    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let created: Bool
    /// Kept open for the creation lock and to recognise the object in `remove`.
    private let fd: Int32
    private var mapped = true

    /// Opens object `objectName`, creating it with `size` bytes when it does not exist
    /// and `create` is true. Returns nil when it does not exist and `create` is false.
    /// An existing object is mapped at its own size; one whose creator died before
    /// sizing it is removed and, with `create`, made again.
    public static func open(objectName: String, size: Int, create: Bool) throws -> POSIXSegment? {
        var unsizedSince: Double?
        while true {
            if create {
                do {
                    let fd = try systemCall("shm_open(\(objectName))") {
                        shm_open(objectName, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                    }
                    return try finishCreating(fd: fd, objectName: objectName, size: size)
                } catch let error as SystemError where error.errno == .fileExists {
                    // Someone else's object: open it below.
                }
            }
            let fd: Int32
            do {
                fd = try systemCall("shm_open(\(objectName))") { shm_open(objectName, O_RDWR | O_CLOEXEC, 0) }
            } catch let error as SystemError where error.errno == .noSuchFileOrDirectory {
                if create { continue }
                return nil
            }
            var st = stat()
            do {
                try systemCall("fstat") { fstat(fd, &st) }
            } catch {
                closeDescriptor(fd)
                throw error
            }
            if st.st_size > 0 {
                return try POSIXSegment(fd: fd, objectName: objectName, size: Int(st.st_size), created: false)
            }
            // Not sized yet. A creator that is alive holds the lock; one that died left an
            // empty object forever. The lock is taken a moment after shm_open, so only an
            // object that stays unlocked and empty for a while counts as abandoned.
            let locked: Bool
            do { locked = try POSIXSegment.isLocked(fd) } catch {
                closeDescriptor(fd)
                throw error
            }
            if locked {
                unsizedSince = nil
            } else if let since = unsizedSince, monotonicSeconds() - since > 0.5 {
                defer { closeDescriptor(fd) }
                try removeIfSame(objectName, as: fd)
                unsizedSince = nil
                continue
            } else if unsizedSince == nil {
                unsizedSince = monotonicSeconds()
            }
            closeDescriptor(fd)
            usleep(1_000)
        }
    }

    /// Takes the creation lock on the new object `fd`, sizes it and maps it; on failure
    /// removes the object and closes `fd`.
    private static func finishCreating(fd: Int32, objectName: String, size: Int) throws -> POSIXSegment {
        do {
            try systemCall("flock(LOCK_EX)") { flock(fd, LOCK_EX) }
            // posix_fallocate, unlike ftruncate, fails now (ENOSPC) instead of
            // raising SIGBUS later when /dev/shm cannot hold the store.
            try errnoReturningCall("posix_fallocate") { posix_fallocate(fd, 0, off_t(size)) }
        } catch let error as SystemError {
            unlinkAfterFailedCreation(objectName)
            closeDescriptor(fd)
            if error.call == "posix_fallocate", [.noSpace, .noMemory, .fileTooLarge].contains(error.errno) {
                throw StoreError.tooLarge("/dev/shm cannot hold a store of \(size) bytes; \(error)")
            }
            throw error
        }
        return try POSIXSegment(fd: fd, objectName: objectName, size: size, created: true)
    }

    /// Removes an object this process just created and could not finish. Ignoring a
    /// failure is harmless: the object is still empty (or unmapped), and the next opener
    /// removes an unlocked empty object as abandoned.
    private static func unlinkAfterFailedCreation(_ objectName: String) {
        ignoringFailure("an abandoned empty object is removed by the next opener") { shm_unlink(objectName) }
    }

    private init(fd: Int32, objectName: String, size: Int, created: Bool) throws {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let error = SystemError.last("mmap")
            if created { POSIXSegment.unlinkAfterFailedCreation(objectName) }
            closeDescriptor(fd)
            throw error
        }
        self.fd = fd
        self.objectName = objectName
        self.base = pointer
        self.size = size
        self.created = created
    }

    public var recordFields: [(String, String)] { [("shm_name", objectName)] }

    /// The creator still holds the creation lock. A failing `flock` (which an open
    /// descriptor does not give) counts as unlocked, the answer for a dead creator.
    public var creatorIsAlive: Bool { (try? POSIXSegment.isLocked(fd)) ?? false }

    /// Releases the creation lock. `flock(LOCK_UN)` on a descriptor this object holds
    /// open cannot fail but through a bug, which traps.
    public func creationFinished() {
        do {
            try systemCall("flock(LOCK_UN)") { flock(fd, LOCK_UN) }
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// Whether another open file description holds an exclusive flock on `fd`'s object.
    private static func isLocked(_ fd: Int32) throws -> Bool {
        do {
            try systemCall("flock(LOCK_SH | LOCK_NB)") { flock(fd, LOCK_SH | LOCK_NB) }
        } catch let error as SystemError where error.errno == .wouldBlock {
            return true
        }
        try systemCall("flock(LOCK_UN)") { flock(fd, LOCK_UN) }
        return false
    }

    /// Whether the name `objectName` still belongs to the object open as `fd` (another
    /// opener may already have replaced or removed it).
    private static func nameStillNames(_ objectName: String, _ fd: Int32) throws -> Bool {
        var mine = stat()
        try systemCall("fstat") { fstat(fd, &mine) }
        var current = stat()
        do {
            try systemCall("stat(/dev/shm\(objectName))") { stat("/dev/shm" + objectName, &current) }
        } catch let error as SystemError where error.errno == .noSuchFileOrDirectory {
            return false
        }
        return mine.st_dev == current.st_dev && mine.st_ino == current.st_ino
    }

    /// Unlinks `objectName` only if it still names the object open as `fd`; it being
    /// gone already (another opener removed it first) is fine.
    private static func removeIfSame(_ objectName: String, as fd: Int32) throws {
        guard try nameStillNames(objectName, fd) else { return }
        try unlink(objectName)
    }

    /// `shm_unlink(objectName)`, where the name being gone already is fine.
    private static func unlink(_ objectName: String) throws {
        do {
            try systemCall("shm_unlink(\(objectName))") { shm_unlink(objectName) }
        } catch let error as SystemError where error.errno == .noSuchFileOrDirectory {
            return
        }
    }

    /// Unmaps the object (once). `munmap` of a whole mapping this object made cannot
    /// fail but through a bug, which traps.
    public func unmap() {
        if mapped {
            do {
                try systemCall("munmap") { munmap(base, size) }
            } catch {
                preconditionFailure("\(error)")
            }
            mapped = false
        }
    }

    public func remove() throws {
        // Gone already, or the name belongs to a newer object: nothing of ours to remove.
        guard try POSIXSegment.nameStillNames(objectName, fd) else { return }
        try POSIXSegment.unlink(objectName)
    }

    deinit {
        unmap()
        closeDescriptor(fd)
    }
}
