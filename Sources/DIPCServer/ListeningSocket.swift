import DIPCCore
import Glibc

/// Why the listening socket could not be set up; `description` is one line for a user.
public enum ListenError: Error, CustomStringConvertible {
    case badAddress(String)
    case portInUse(address: String, port: Int, SystemError)
    case failed(address: String, port: Int, SystemError)

    public var description: String {
        switch self {
        case let .badAddress(address): return "cannot listen on \"\(address)\": not a numeric IPv4 or IPv6 address"
        case let .portInUse(address, port, error): return "port \(port) is already in use on \(address) (\(error))"
        case let .failed(address, port, error): return "cannot listen on \(address):\(port): \(error)"
        }
    }
}

/// A TCP socket bound and listening (SO_REUSEADDR, close-on-exec).
public struct ListeningSocket {
    public let fd: Int32

    public init(address: String, port: Int) throws {
        var storage = sockaddr_storage()
        let length: socklen_t
        let family: Int32
        if address.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, address, &sin6.sin6_addr) == 1 else { throw ListenError.badAddress(address) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin6, as: sockaddr_in6.self) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            family = AF_INET6
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { throw ListenError.badAddress(address) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: sin, as: sockaddr_in.self) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            family = AF_INET
        }
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ListenError.failed(address: address, port: port, .last("socket")) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        if bound != 0 {
            let error = SystemError.last("bind")
            close(fd)
            if error.errno == EADDRINUSE { throw ListenError.portInUse(address: address, port: port, error) }
            throw ListenError.failed(address: address, port: port, error)
        }
        if listen(fd, 1024) != 0 {
            let error = SystemError.last("listen")
            close(fd)
            throw ListenError.failed(address: address, port: port, error)
        }
        self.fd = fd
    }
}
