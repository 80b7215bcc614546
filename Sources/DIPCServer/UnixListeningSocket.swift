import DIPCCore
import Glibc

/// The `--unix PATH` socket (SPEC §1): created mode 0600 whatever the umask, a stale
/// file (nothing listening) replaced, a live one refused; removed on stop only while
/// it is still this server's file.
final class UnixListeningSocket {
    let path: String
    let socket: ListeningSocket
    /// The socket file's identity once bound, so that stop never removes another's file.
    private let device: UInt64
    private let inode: UInt64

    init(path: String) throws(StartupError) {
        self.path = path
        var address = try Self.address(path)
        try Self.clearStaleFile(path, address: &address)
        let fd: Int32
        do {
            fd = try systemCall("socket(AF_UNIX)") {
                Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
        } catch {
            throw StartupError("cannot listen on the Unix socket \(path): \(error)")
        }
        var info = stat()
        do {
            // bind creates the file with the umask's mode: 0600 from the start (start-up is
            // single-threaded here: no other thread creates files meanwhile), and chmod
            // again in case the file system ignores the umask.
            let previous = umask(0o177)
            let bound = Result { try Self.bind(fd, &address) }
            umask(previous)
            try bound.get()
            try systemCall("chmod(\(path))") { chmod(path, 0o600) }
            try systemCall("stat(\(path))") { stat(path, &info) }
            try systemCall("listen") { listen(fd, 1024) }
        } catch {
            closeDescriptor(fd)
            throw StartupError("cannot listen on the Unix socket \(path): \(error)")
        }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        socket = ListeningSocket(unixDomainFD: fd)
    }

    /// Closes the socket and removes its file, if the file is still the one bound.
    func close() {
        closeDescriptor(socket.fd)
        var info = stat()
        guard stat(path, &info) == 0, UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else { return }
        ignoringFailure("a file removed meanwhile needs no removing") { unlink(path) }
    }

    private static func address(_ path: String) throws(StartupError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw StartupError("--unix \(path): a Unix socket path is 1-\(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return address
    }

    private static func bind(_ fd: Int32, _ address: inout sockaddr_un) throws {
        try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr in
                _ = try systemCall("bind") { Glibc.bind(fd, sockaddr, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
        }
    }

    /// Removes a socket file nothing listens on; refuses a live one and anything that is
    /// not a socket. A missing file is fine.
    private static func clearStaleFile(_ path: String, address: inout sockaddr_un) throws(StartupError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw StartupError("--unix \(path): the path exists and is not a socket")
        }
        switch isLive(&address) {
        case .live:
            throw StartupError("--unix \(path): a server already listens on this socket")
        case .stale:
            do {
                try systemCall("unlink(\(path))") { unlink(path) }
            } catch {
                throw StartupError("--unix \(path): cannot replace the stale socket file: \(error)")
            }
        case let .unknown(error):
            throw StartupError("--unix \(path): cannot tell whether a server listens on it: \(error)")
        }
    }

    enum Liveness { case live, stale, unknown(SystemError) }

    /// Connects to the socket: accepted means live, ECONNREFUSED means stale.
    static func isLive(_ address: inout sockaddr_un) -> Liveness {
        guard let fd = try? systemCall("socket(AF_UNIX)", {
            Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }) else { return .unknown(SystemError("socket(AF_UNIX)", errno: Errno.current)) }
        defer { closeDescriptor(fd) }
        do {
            try withUnsafePointer(to: &address) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr in
                    _ = try systemCall("connect") { connect(fd, sockaddr, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            }
            return .live
        } catch let error as SystemError {
            return error.errno == .connectionRefused ? .stale : .unknown(error)
        } catch {
            return .unknown(SystemError("connect", errno: EINVAL))
        }
    }

    /// For `dipcrm` after a crash: removes the socket file at `path` when it is a socket
    /// nothing listens on. Returns whether it removed it.
    static func removeStale(_ path: String) -> Bool {
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK,
              var address = try? address(path), case .stale = isLive(&address) else { return false }
        return unlink(path) == 0
    }
}
