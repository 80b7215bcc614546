import Glibc

/// Whole small text files (records, logs, `/proc` entries) for tests and tools.
public enum TextFile {
    /// The file's contents as UTF-8 (invalid bytes replaced), or "" when it cannot be opened.
    public static func read(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
