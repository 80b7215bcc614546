/// Validation of store names (`--name`).
public enum StoreName {
    /// Longest accepted name.
    public static let maximumLength = 64

    /// Whether `name` is 1–64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
    public static func isValid(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...maximumLength).contains(bytes.count) else { return false }
        func isAlnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        guard isAlnum(bytes[0]) else { return false }
        return bytes.allSatisfy { isAlnum($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    /// A 32-bit FNV-1a hash of `"dipc:" + name`, used to derive IPC keys.
    public static func hash(_ name: String) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        for b in ("dipc:" + name).utf8 {
            h ^= UInt32(b)
            h = h &* 16_777_619
        }
        return h
    }
}
