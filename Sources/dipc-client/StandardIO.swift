import DIPCCore
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
                do {
                    done += try systemCall("write") { Glibc.write(fd, raw.baseAddress! + done, raw.count - done) }
                } catch let error as SystemError {
                    let name = fd == STDOUT_FILENO ? "stdout" : fd == STDERR_FILENO ? "stderr" : "fd \(fd)"
                    throw ToolFailure(reason: "write to \(name): \(error.errno)")
                }
            }
        }
    }

    /// Reads `fd` to its end, verbatim.
    static func readAll(from fd: Int32) throws -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { raw in try systemCall("read") { Glibc.read(fd, raw.baseAddress!, raw.count) } }
            } catch let error as SystemError {
                throw ToolFailure(reason: "read from stdin: \(error.errno)")
            }
            if n == 0 { return result }
            result.append(contentsOf: chunk[0..<n])
        }
    }
}
