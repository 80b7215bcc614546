/// Reply encoders (SPEC §2). Data bytes after a `value` header are sent separately.
public enum Reply {
    /// `ok LEN VERSION\n`
    public static func value(length: Int, version: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(44)
        out.append(contentsOf: [UInt8(ascii: "o"), UInt8(ascii: "k"), UInt8(ascii: " ")])
        appendDecimal(UInt64(clamping: length), to: &out)
        out.append(UInt8(ascii: " "))
        appendDecimal(version, to: &out)
        out.append(0x0A)
        return out
    }

    /// `ok VERSION\n`
    public static func version(_ version: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(24)
        out.append(contentsOf: [UInt8(ascii: "o"), UInt8(ascii: "k"), UInt8(ascii: " ")])
        appendDecimal(version, to: &out)
        out.append(0x0A)
        return out
    }

    /// `bye\n`
    public static let bye: [UInt8] = Array("bye\n".utf8)

    /// `ok PREFIX k=v k=v\n` (`ok k=v ...\n` without a prefix). Spaces and control
    /// characters inside keys, values or the prefix are sent as `_` so the reply stays
    /// one line of single-space-separated fields.
    public static func keyValues(_ pairs: [(String, String)], prefix: String? = nil) -> [UInt8] {
        var out: [UInt8] = Array("ok".utf8)
        if let prefix, !prefix.isEmpty {
            out.append(UInt8(ascii: " "))
            appendField(prefix, to: &out)
        }
        for (key, value) in pairs {
            out.append(UInt8(ascii: " "))
            appendField(key, to: &out)
            out.append(UInt8(ascii: "="))
            appendField(value, to: &out)
        }
        out.append(0x0A)
        return out
    }

    private static func appendField(_ text: String, to out: inout [UInt8]) {
        for byte in text.utf8 {
            out.append(byte <= 0x20 || byte == 0x7F ? UInt8(ascii: "_") : byte)
        }
    }

    static func appendDecimal(_ value: UInt64, to out: inout [UInt8]) {
        var count = 0
        var rest = value
        repeat {
            count += 1
            rest /= 10
        } while rest > 0
        let start = out.count
        out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: count))
        rest = value
        var index = start + count - 1
        repeat {
            out[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        } while rest > 0
    }
}
