import Glibc

/// Protected mode (SPEC §1, §3 Access): an address beyond loopback is served only with
/// authentication or `--insecure`.
enum BindAddress {
    /// Whether `address` (as `--bind` gives it, resolved as `ListeningSocket` resolves
    /// it: its first address) is in 127.0.0.0/8 or is ::1 (or ::ffff:127.x.y.z). Nil
    /// when it does not resolve; the listener then reports it.
    static func isLoopback(_ address: String) -> Bool? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, "0", &hints, &found) == 0, let first = found else { return nil }
        defer { freeaddrinfo(found) }
        let socketAddress = UnsafeRawPointer(first.pointee.ai_addr!)
        switch first.pointee.ai_family {
        case AF_INET:
            let ipv4 = socketAddress.load(as: sockaddr_in.self)
            return UInt32(bigEndian: ipv4.sin_addr.s_addr) >> 24 == 127
        case AF_INET6:
            let ipv6 = socketAddress.load(as: sockaddr_in6.self)
            let bytes = withUnsafeBytes(of: ipv6.sin6_addr) { Array($0) }
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            let mappedPrefix: [UInt8] = Array(repeating: 0, count: 10) + [0xFF, 0xFF]
            return Array(bytes[0..<12]) == mappedPrefix && bytes[12] == 127
        default:
            return false
        }
    }

    /// Throws SPEC's start-up failure when `access` may not serve `address`.
    static func check(_ address: String, access: AccessConfiguration) throws(StartupError) {
        guard !access.authenticates, !access.insecure, isLoopback(address) == false else { return }
        throw StartupError("refusing to serve \(address) without authentication: give --auth-file or --tls-ca, or --insecure")
    }
}
