import Glibc

/// A POSIX shared-memory object (`shm_open` + `mmap(MAP_SHARED)`), mode 0600,
/// visible as `/dev/shm/<name without its slash>` while it exists.
public final class POSIXSegment: SharedSegment {
    /// The object name, such as `/dipc.NAME`.
    public let objectName: String
    public let base: UnsafeMutableRawPointer
    public let size: Int
    public let created: Bool
    private var mapped = true

    /// Opens object `objectName`, creating it with `size` bytes when it does not exist
    /// and `create` is true. Returns nil when it does not exist and `create` is false.
    /// An existing object is mapped at its own size.
    public static func open(objectName: String, size: Int, create: Bool) throws -> POSIXSegment? {
        let deadline = monotonicSeconds() + 5
        while true {
            if create {
                let fd = shm_open(objectName, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                if fd >= 0 {
                    defer { close(fd) }
                    // posix_fallocate, unlike ftruncate, fails now (ENOSPC) instead of
                    // raising SIGBUS later when /dev/shm cannot hold the store.
                    let rc = posix_fallocate(fd, 0, off_t(size))
                    if rc != 0 {
                        shm_unlink(objectName)
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
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw SystemError.last("fstat") }
            if st.st_size == 0 {
                // Its creator has not sized it yet: look again shortly.
                guard monotonicSeconds() < deadline else {
                    throw StoreError.notReady(name: String(objectName.dropFirst()))
                }
                usleep(1_000)
                continue
            }
            return try POSIXSegment(fd: fd, objectName: objectName, size: Int(st.st_size), created: false)
        }
    }

    private init(fd: Int32, objectName: String, size: Int, created: Bool) throws {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            let error = SystemError.last("mmap")
            if created { shm_unlink(objectName) }
            throw error
        }
        self.objectName = objectName
        self.base = pointer
        self.size = size
        self.created = created
    }

    public var recordFields: [(String, String)] { [("shm_name", objectName)] }

    public func unmap() {
        if mapped {
            munmap(base, size)
            mapped = false
        }
    }

    public func remove() throws {
        if shm_unlink(objectName) != 0 && errno != ENOENT {
            throw SystemError.last("shm_unlink(\(objectName))")
        }
    }

    deinit { unmap() }
}
