@preconcurrency import Glibc

/// The wire protocols the load generator speaks.
enum BenchProtocol: String, CaseIterable, Sendable {
    /// dipc: `r K` / `w K LEN` + data.
    case dipc
    /// memcached's text protocol: `get bench:K` / `set bench:K 0 0 LEN` + data.
    case memcached
    /// The echo floor (`dipc-bench echo-server`): a 16-byte header (payload length,
    /// reply length; little-endian UInt64) and the payload; the reply is that many bytes.
    /// Request and reply sizes mimic dipc's.
    case echo
    /// Redis (RESP): `GET bench:K` / `SET bench:K` + data, as arrays of bulk strings.
    case redis
}

/// One blocking connection doing reads and writes of one key space in one protocol.
/// Requests are built once; nothing on the request path allocates (with `verify`, a
/// write fills its value in place and a read checks the value in place).
final class ProtocolClient {
    let proto: BenchProtocol
    let connection: RawConnection
    let valueSize: Int
    let verify: Bool
    /// Identifies this client's writes inside self-checking values.
    let writer: Int
    private var sequence: UInt64 = 0
    private var readRequests: [[UInt8]] = []
    private var writeHeaders: [[UInt8]] = []
    /// The value sent by writes, followed by memcached's `\r\n`.
    private let outgoing: UnsafeMutableRawBufferPointer
    /// Where `verify` reads values to check them.
    private let incoming: UnsafeMutableRawBufferPointer

    /// The echo floor's reply sizes: what dipc answers to a read and to a write.
    static let echoReadReplyOverhead = 12, echoWriteReply = 9, echoWriteRequestOverhead = 8

    /// Connects to 127.0.0.1:`port`, or to `unixPath` when given; over TLS (the server
    /// verified against `tlsCA`) when `tlsCA` is given.
    init(_ proto: BenchProtocol, port: Int, keys: Int, valueSize: Int, verify: Bool, writer: Int,
         unixPath: String? = nil, tlsCA: String? = nil) throws {
        self.proto = proto
        self.valueSize = valueSize
        self.verify = verify
        self.writer = writer
        connection = try unixPath.map { try RawConnection(unixPath: $0) } ?? RawConnection(port: port)
        if let tlsCA { try connection.startTLS(caFile: tlsCA) }
        outgoing = .allocate(byteCount: valueSize + 2, alignment: 16)
        incoming = .allocate(byteCount: max(valueSize, 1), alignment: 16)
        for i in 0..<valueSize { outgoing[i] = UInt8(0x61 + i % 26) }
        outgoing[valueSize] = 0x0D
        outgoing[valueSize + 1] = 0x0A
        for key in 0..<keys {
            switch proto {
            case .dipc:
                readRequests.append(Array("r \(key)\n".utf8))
                writeHeaders.append(Array("w \(key) \(valueSize)\n".utf8))
            case .memcached:
                readRequests.append(Array("get bench:\(key)\r\n".utf8))
                writeHeaders.append(Array("set bench:\(key) 0 0 \(valueSize)\r\n".utf8))
            case .redis:
                let name = "bench:\(key)"
                readRequests.append(Array("*2\r\n$3\r\nGET\r\n$\(name.utf8.count)\r\n\(name)\r\n".utf8))
                writeHeaders.append(Array("*3\r\n$3\r\nSET\r\n$\(name.utf8.count)\r\n\(name)\r\n$\(valueSize)\r\n".utf8))
            case .echo:
                readRequests.append(Self.echoHeader(payload: 4, reply: valueSize + Self.echoReadReplyOverhead) + [0x72, 0x20, 0x30, 0x0A])
                writeHeaders.append(Self.echoHeader(payload: valueSize + Self.echoWriteRequestOverhead, reply: Self.echoWriteReply)
                                    + Array("w 0 \(valueSize)\n".utf8.prefix(Self.echoWriteRequestOverhead)).paddedTo(Self.echoWriteRequestOverhead))
            }
        }
    }

    deinit {
        outgoing.deallocate()
        incoming.deallocate()
        connection.close()
    }

    static func echoHeader(payload: Int, reply: Int) -> [UInt8] {
        withUnsafeBytes(of: (UInt64(payload).littleEndian, UInt64(reply).littleEndian)) { Array($0) }
    }

    /// Writes `key` and reads the reply.
    func write(_ key: Int) throws {
        if verify {
            sequence += 1
            SelfCheckingValue.fill(UnsafeMutableRawBufferPointer(rebasing: outgoing[0..<valueSize]),
                                   key: key, writer: writer, sequence: sequence)
        }
        let dataCount = proto == .memcached || proto == .redis ? valueSize + 2 : valueSize
        try writeHeaders[key].withUnsafeBytes {
            try connection.send($0, UnsafeRawBufferPointer(rebasing: outgoing[0..<dataCount]))
        }
        switch proto {
        case .dipc:
            try connection.readLine { line in
                guard ReplyLine.equals(ReplyLine.field(line, 0), "ok"), ReplyLine.number(ReplyLine.field(line, 1)) != nil else {
                    throw BenchError("dipc w \(key): unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
            }
        case .memcached:
            try connection.readLine { line in
                guard ReplyLine.equals(line, "STORED") else {
                    throw BenchError("memcached set: unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
            }
        case .redis:
            try connection.readLine { line in
                guard ReplyLine.equals(line, "+OK") else {
                    throw BenchError("redis SET: unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
            }
        case .echo:
            try connection.skip(Self.echoWriteReply)
        }
    }

    /// Reads `key` (the whole reply) and, with `verify`, checks the value.
    func read(_ key: Int) throws {
        try readRequests[key].withUnsafeBytes { try connection.send($0) }
        let length: Int
        switch proto {
        case .dipc:
            length = try connection.readLine { line in
                guard ReplyLine.equals(ReplyLine.field(line, 0), "ok"), let length = ReplyLine.number(ReplyLine.field(line, 1)),
                      ReplyLine.number(ReplyLine.field(line, 2)) != nil else {
                    throw BenchError("dipc r \(key): unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
                return length
            }
        case .memcached:
            length = try connection.readLine { line in
                guard ReplyLine.equals(ReplyLine.field(line, 0), "VALUE"), let length = ReplyLine.number(ReplyLine.field(line, 3)) else {
                    throw BenchError("memcached get bench:\(key): unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
                return length
            }
        case .redis:
            length = try connection.readLine { line in
                guard line.first == 0x24, let length = ReplyLine.number(UnsafeRawBufferPointer(rebasing: line.dropFirst())) else {
                    throw BenchError("redis GET bench:\(key): unexpected reply \"\(String(decoding: line, as: UTF8.self))\"")
                }
                return length
            }
        case .echo:
            try connection.skip(valueSize + Self.echoReadReplyOverhead)
            return
        }
        guard length == valueSize else {
            throw BenchError("\(proto) read of key \(key): \(length) bytes, not the \(valueSize) written")
        }
        try connection.read(length, into: verify ? incoming.baseAddress : nil)
        if verify, let problem = SelfCheckingValue.check(UnsafeRawBufferPointer(rebasing: incoming[0..<length]), key: key,
                                                          expectedSize: valueSize) {
            throw BenchError("\(proto): \(problem)")
        }
        if proto == .redis { try connection.skip(2) }
        if proto == .memcached {
            try connection.skip(2)
            try connection.readLine { line in
                guard ReplyLine.equals(line, "END") else { throw BenchError("memcached get: no END after the value") }
            }
        }
    }
}

extension Array where Element == UInt8 {
    func paddedTo(_ count: Int) -> [UInt8] { self + [UInt8](repeating: 0x20, count: Swift.max(0, count - self.count)) }
}
