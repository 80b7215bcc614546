import DIPCCore
import Glibc

/// Why the listening socket could not be set up; `description` is one line for a user.
public enum ListenError: Error, CustomStringConvertible {
    case badAddress(String)
    case portInUse(address: String, port: Int, SystemError)
    case failed(address: String, port: Int, SystemError)

    public var description: String {
        switch self {
        case let .badAddress(address): return "cannot listen on \"\(address)\": not an IPv4 or IPv6 address or a known host name"
        case let .portInUse(address, port, error): return "port \(port) is already in use on \(address) (\(error))"
        case let .failed(address, port, error): return "cannot listen on \(address):\(port): \(error)"
        }
    }
}

/// A TCP socket bound and listening (SO_REUSEADDR, close-on-exec), or a Unix-domain
/// one (see `UnixListeningSocket`).
public struct ListeningSocket: Sendable {
    public let fd: Int32
    /// Set for a Unix-domain socket: no TCP options, no TLS.
    public private(set) var isUnixDomain = false

    init(unixDomainFD fd: Int32) {
        self.fd = fd
        isUnixDomain = true
    }

    /// Binds `address` (a numeric IPv4 or IPv6 address, or a host name such as
    /// `localhost`, which takes its first address) and `port`, and listens.
    public init(address: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, String(port), &hints, &found) == 0, let first = found else {
            throw ListenError.badAddress(address)
        }
        defer { freeaddrinfo(found) }
        var storage = sockaddr_storage()
        let length = first.pointee.ai_addrlen
        withUnsafeMutableBytes(of: &storage) {
            $0.copyMemory(from: UnsafeRawBufferPointer(start: first.pointee.ai_addr, count: Int(length)))
        }
        let family = first.pointee.ai_family
        let fd: Int32
        do {
            fd = try systemCall("socket") { socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        } catch let error as SystemError {
            throw ListenError.failed(address: address, port: port, error)
        }
        do {
            var one: Int32 = 1
            try systemCall("setsockopt(SO_REUSEADDR)") {
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            }
            try withUnsafePointer(to: &storage) { address throws -> Void in
                try address.withMemoryRebound(to: sockaddr.self, capacity: 1) { sockaddr throws -> Void in
                    try systemCall("bind") { bind(fd, sockaddr, length) }
                }
            }
            try systemCall("listen") { listen(fd, 1024) }
        } catch let error as SystemError {
            closeDescriptor(fd)
            if error.errno == .addressInUse { throw ListenError.portInUse(address: address, port: port, error) }
            throw ListenError.failed(address: address, port: port, error)
        }
        self.fd = fd
    }
}
