import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The local port of `conn`'s socket, or nil when the kernel does not say.
func localPort(of conn: Conn) -> Int? {
    var addr = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let rc = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(conn.fd, $0, &length) }
    }
    return rc == 0 ? Int(UInt16(bigEndian: addr.sin_port)) : nil
}

/// Bytes queued in the send queue of the server's end of `conn` (the `tx_queue` column of
/// /proc/net/tcp): what the server has written but `conn` has not taken. On loopback this
/// stays above zero only while `conn`'s receive buffer is full, that is while the server
/// is held up sending to a client that does not read. Nil when the socket is not listed.
func serverSendQueue(of conn: Conn) -> Int? {
    guard let clientPort = localPort(of: conn), let table = procFile("/proc/net/tcp") else { return nil }
    let serverEnd = String(format: ":%04X", conn.port)
    let clientEnd = String(format: ":%04X", clientPort)
    for line in table.split(separator: "\n").dropFirst() {
        // sl local_address rem_address st tx_queue:rx_queue ...
        let fields = line.split(separator: " ")
        guard fields.count > 4, fields[1].hasSuffix(serverEnd), fields[2].hasSuffix(clientEnd) else { continue }
        guard let tx = fields[4].split(separator: ":").first else { return nil }
        return Int(tx, radix: 16)
    }
    return nil
}
