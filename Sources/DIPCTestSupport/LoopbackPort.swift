import DIPCCore
import Glibc

/// Free TCP ports on 127.0.0.1 for tools that start servers.
public enum LoopbackPort {
    /// A port that was free a moment ago (the kernel's choice for a bind to port 0).
    /// Throws `SystemError` naming the failed call.
    public static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw SystemError("bind", errno: errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// A listening TCP socket on 127.0.0.1 (close-on-exec, SO_REUSEADDR) at `port`, or at
    /// a port the kernel picks when `port` is 0; the socket and its port. Throws
    /// `SystemError` naming the failed call.
    public static func listen(port: Int = 0, backlog: Int32 = 64) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ready = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && Glibc.listen(fd, backlog) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ready else {
            let failed = SystemError("bind/listen on port \(port)", errno: errno)
            close(fd)
            throw failed
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
