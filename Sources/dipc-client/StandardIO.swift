@preconcurrency import Glibc

/// A failure outside the protocol (e.g. stdout closed): exit 1 with `reason`.
struct ToolFailure: Error {
    var reason: String
}

/// Unbuffered, byte-exact access to the standard descriptors.
enum StandardIO {
    /// Writes every byte to `fd`; throws `ToolFailure` naming the stream and strerror.
    static func write(_ bytes: [UInt8], to fd: Int32) throws {
        var done = 0
        try bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
                if n > 0 { done += n; continue }
                if n < 0 && errno == EINTR { continue }
                let name = fd == STDOUT_FILENO ? "stdout" : fd == STDERR_FILENO ? "stderr" : "fd \(fd)"
                throw ToolFailure(reason: "write to \(name): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Reads `fd` to its end, verbatim.
    static func readAll(from fd: Int32) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n > 0 { result.append(contentsOf: chunk[0..<n]); continue }
            if n == 0 { return result }
            if errno == EINTR { continue }
            throw ToolFailure(reason: "read from stdin: \(String(cString: strerror(errno)))")
        }
    }
}
