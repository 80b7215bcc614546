import DIPCCore
import DIPCProtocol
import Glibc

/// The token of an `--auth-file`. Never printed: its description is a placeholder, so
/// that no log line or error message can carry it.
struct AuthenticationSecret: Sendable, CustomStringConvertible {
    private let token: [UInt8]

    var description: String { "<token>" }

    /// Whether `offered` is the token, compared in constant time.
    func accepts(_ offered: [UInt8]) -> Bool {
        AuthenticationToken.matches(offered, token)
    }

    /// Reads and checks the file as ssh checks a key (SPEC §1): it must exist, be
    /// neither readable nor writable by group or others, and hold on its first line
    /// (without its `\n` and a `\r` before it) 16-200 visible ASCII characters.
    init(file path: String) throws(StartupError) {
        let fd: Int32
        do {
            fd = try systemCall("open") { open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY) }
        } catch {
            throw StartupError("cannot read the auth file \(path): \(error)")
        }
        defer { closeDescriptor(fd) }
        var info = stat()
        do {
            try systemCall("fstat") { fstat(fd, &info) }
        } catch {
            throw StartupError("cannot read the auth file \(path): \(error)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw StartupError("the auth file \(path) is not a regular file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw StartupError("the auth file \(path) is accessible by group or others (mode \(String(info.st_mode & 0o777, radix: 8))): chmod 600 it")
        }
        // The first line of a valid file fits in this; more is only read to find its end.
        let limit = AuthenticationToken.maximumLength + 2
        var bytes = [UInt8](repeating: 0, count: limit + 1)
        var count = 0
        while count < bytes.count {
            let n: Int
            do {
                n = try bytes.withUnsafeMutableBytes { raw in
                    try systemCall("read") { read(fd, raw.baseAddress! + count, raw.count - count) }
                }
            } catch {
                throw StartupError("cannot read the auth file \(path): \(error)")
            }
            if n == 0 { break }
            count += n
        }
        var line = bytes[0..<count]
        if let newline = line.firstIndex(of: 0x0A) { line = line[..<newline] }
        if line.last == 0x0D { line = line.dropLast() }
        // Zero the copy that held the file: only `token` keeps the secret.
        defer { for index in bytes.indices { bytes[index] = 0 } }
        guard AuthenticationToken.isValid(line) else {
            throw StartupError("the auth file \(path) must hold \(AuthenticationToken.minimumLength)-\(AuthenticationToken.maximumLength) visible ASCII characters (0x21-0x7e) on its first line")
        }
        token = Array(line)
    }
}
