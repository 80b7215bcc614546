@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench echo-server`: the floor. A thread per connection doing nothing but the
/// socket I/O of the `echo` protocol (see `BenchProtocol.echo`): read a 16-byte header
/// and its payload, send the reply length asked for. What any server here costs at least.
struct EchoServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-server",
        abstract: "The socket floor: thread per connection, only socket I/O (the load generator's --proto echo).")

    @Option(help: "Port to listen on (127.0.0.1); 0 picks a free one.") var port: Int = 0
    @Option(help: "File to write the port to once listening.") var portFile: String?
    @Flag(help: "Before each recv, poll the socket and a pipe as dipc does (to measure what that wait costs).")
    var pollBeforeRecv = false

    func run() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0
            }
        }
        guard bound, listen(listener, 1024) == 0 else { throw BenchError("bind/listen: \(String(cString: strerror(errno)))") }
        let actualPort = Int(UInt16(bigEndian: address.sin_port))
        if let portFile {
            guard let file = fopen(portFile + ".tmp", "w") else { throw BenchError("cannot write \(portFile)") }
            fputs("\(actualPort)\n", file)
            fclose(file)
            rename(portFile + ".tmp", portFile)
        }
        print("echo-server listening on 127.0.0.1:\(actualPort)")
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                throw BenchError("accept: \(String(cString: strerror(errno)))")
            }
            EchoConnection.start(fd, pollBeforeRecv: pollBeforeRecv)
        }
    }
}

/// One echo connection on its own thread.
enum EchoConnection {
    static let capacity = 1 << 17

    /// Starts `serve(fd)` on a detached thread (a static function: see the Swift 6 thread note).
    /// A pipe nobody writes: what `--poll-before-recv` polls beside the socket.
    nonisolated(unsafe) static var idlePipe: (Int32, Int32) = (-1, -1)

    static func start(_ fd: Int32, pollBeforeRecv: Bool) {
        if pollBeforeRecv && idlePipe.0 < 0 {
            var ends: [Int32] = [0, 0]
            if pipe(&ends) == 0 { idlePipe = (ends[0], ends[1]) }
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, 256 * 1024)
        var thread = pthread_t()
        // The descriptor, and the poll flag in bit 32, travel in the context pointer.
        let context = UnsafeMutableRawPointer(bitPattern: (Int(fd) + 1) | (pollBeforeRecv ? 1 << 32 : 0))
        if pthread_create(&thread, &attributes, { raw in
            let bits = Int(bitPattern: raw)
            EchoConnection.serve(Int32((bits & 0xFFFF_FFFF) - 1), pollBeforeRecv: bits >> 32 != 0)
            return nil
        }, context) != 0 {
            close(fd)
        }
    }

    static func serve(_ fd: Int32, pollBeforeRecv: Bool) {
        defer { close(fd) }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { buffer.deallocate() }
        // The reply bytes: what was last received is as good as anything.
        let reply = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        defer { reply.deallocate() }
        reply.initializeMemory(as: UInt8.self, repeating: 0x61, count: capacity)
        var start = 0, end = 0
        while true {
            // Whole requests first.
            while end - start >= 16 {
                let payload = Int(UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: start, as: UInt64.self)))
                let replyLength = Int(UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: start + 8, as: UInt64.self)))
                guard payload <= capacity - 16, replyLength <= capacity else { return }
                if end - start < 16 + payload { break }
                start += 16 + payload
                var sent = 0
                while sent < replyLength {
                    let n = send(fd, reply + sent, replyLength - sent, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; return }
                    sent += n
                }
            }
            if start == end { start = 0; end = 0 } else if start > 0 && capacity - end < capacity / 2 {
                buffer.copyMemory(from: buffer + start, byteCount: end - start)
                end -= start
                start = 0
            }
            if pollBeforeRecv {
                var fds = (pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: idlePipe.0, events: Int16(POLLIN), revents: 0))
                _ = withUnsafeMutablePointer(to: &fds) { $0.withMemoryRebound(to: pollfd.self, capacity: 2) { poll($0, 2, -1) } }
            }
            let n = recv(fd, buffer + end, capacity - end, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            end += n
        }
    }
}
