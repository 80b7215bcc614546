import Glibc

/// The token of an auth file (`dipc --auth-file`, `dipc-client --auth-file` or
/// `$DIPC_AUTH_FILE`): its first line, without its `\n` and a `\r` before it.
public enum DIPCAuthFile {
    /// Reads the token of the file at `path`. Throws `.connection` naming the file (never
    /// the token) when it cannot be read or its first line is not 16-200 visible ASCII
    /// characters.
    public static func token(at path: String) throws -> String {
        guard let file = fopen(path, "re") else {
            throw DIPCClientError.connection("auth file \(path): \(errnoText(errno))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        while bytes.count <= 202 {
            let c = fgetc(file)
            if c == EOF || c == 0x0A { break }
            bytes.append(UInt8(truncatingIfNeeded: c))
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard (16...200).contains(bytes.count), bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            throw DIPCClientError.connection("auth file \(path): its first line must be 16-200 visible ASCII characters")
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
