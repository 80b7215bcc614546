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
                let fd = shm_open(objectName, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                if fd >= 0 {
                    _ = flock(fd, LOCK_EX)
                    // posix_fallocate, unlike ftruncate, fails now (ENOSPC) instead of
                    // raising SIGBUS later when /dev/shm cannot hold the store.
                    let rc = posix_fallocate(fd, 0, off_t(size))
                    if rc != 0 {
                        shm_unlink(objectName)
                        close(fd)
                        if rc == ENOSPC || rc == ENOMEM || rc == EFBIG {
                            throw StoreError.tooLarge("/dev/shm cannot hold a store of \(size) bytes; \(SystemError("posix_fallocate", errno: rc))")
                        }
                        throw SystemError("posix_fallocate", errno: rc)
                    }
                    return try POSIXSegment(fd: fd, objectName: objectName, size: size, created: true)
                }
                if errno != EEXIST { throw SystemError.last("shm_open(\(objectName))") }
            }
            let fd = shm_open(objectName, O_RDWR | O_CLOEXEC, 0)
            if fd < 0 {
                if errno == ENOENT {
                    if create { continue }
                    return nil
                }
                throw SystemError.last("shm_open(\(objectName))")
            }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let error = SystemError.last("fstat")
                close(fd)
                throw error
            }
            if st.st_size > 0 {
                return try POSIXSegment(fd: fd, objectName: objectName, size: Int(st.st_size), created: false)
            }
            // Not sized yet. A creator that is alive holds the lock; one that died left an
            // empty object forever. The lock is taken a moment after shm_open, so only an
            // object that stays unlocked and empty for a while counts as abandoned.
            if POSIXSegment.isLocked(fd) {
                unsizedSince = nil
            } else if let since = unsizedSince, monotonicSeconds() - since > 0.5 {
                removeIfSame(objectName, as: fd)
                close(fd)
                unsizedSince = nil
                continue
            } else if unsizedSince == nil {
                unsizedSince = monotonicSeconds()
            }
            close(fd)
            usleep(1_000)
        }
    }

    private init(fd: Int32, objectName: String, size: Int, created: Bool) throws {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let error = SystemError.last("mmap")
            if created { shm_unlink(objectName) }
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.objectName = objectName
        self.base = pointer
        self.size = size
        self.created = created
    }

    public var recordFields: [(String, String)] { [("shm_name", objectName)] }

    /// The creator still holds the creation lock.
    public var creatorIsAlive: Bool { POSIXSegment.isLocked(fd) }

    public func creationFinished() {
        _ = flock(fd, LOCK_UN)
    }

    /// Whether another open file description holds an exclusive flock on `fd`'s object.
    private static func isLocked(_ fd: Int32) -> Bool {
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            _ = flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    /// Unlinks `objectName` only if it still names the object open as `fd` (another
    /// opener may already have replaced it).
    private static func removeIfSame(_ objectName: String, as fd: Int32) {
        var mine = stat()
        var current = stat()
        guard fstat(fd, &mine) == 0, stat("/dev/shm" + objectName, &current) == 0,
              mine.st_dev == current.st_dev, mine.st_ino == current.st_ino else { return }
        shm_unlink(objectName)
    }

    public func unmap() {
        if mapped {
            munmap(base, size)
            mapped = false
        }
    }

    public func remove() throws {
        var mine = stat()
        var current = stat()
        if fstat(fd, &mine) == 0, stat("/dev/shm" + objectName, &current) == 0,
           mine.st_dev != current.st_dev || mine.st_ino != current.st_ino {
            return  // the name already belongs to a newer object
        }
        if shm_unlink(objectName) != 0 && errno != ENOENT {
            throw SystemError.last("shm_unlink(\(objectName))")
        }
    }

    deinit {
        unmap()
        Glibc.close(fd)
    }
}
