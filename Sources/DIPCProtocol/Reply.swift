/// Reply encoders (SPEC §2). Data bytes after a `value` header are sent separately.
public enum Reply {
    /// `ok LEN VERSION\n`
    public static func value(length: Int, version: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        appendValue(length: length, version: version, to: &out)
        return out
    }

    /// `ok VERSION\n`
    public static func version(_ version: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        appendVersion(version, to: &out)
        return out
    }

    /// Appends `ok LEN VERSION\n` to `out` (no allocation once `out` has the capacity).
    public static func appendValue(length: Int, version: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 48) { line in
            var count = put3(line, 0, "o", "k", " ")
            count = putDecimal(UInt64(clamping: length), line, count)
            line[count] = UInt8(ascii: " ")
            count = putDecimal(version, line, count + 1)
            line[count] = 0x0A
            out.append(contentsOf: UnsafeBufferPointer(rebasing: line[0...count]))
        }
    }

    /// Appends `ok VERSION\n` to `out` (no allocation once `out` has the capacity).
    public static func appendVersion(_ version: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { line in
            let count = putDecimal(version, line, put3(line, 0, "o", "k", " "))
            line[count] = 0x0A
            out.append(contentsOf: UnsafeBufferPointer(rebasing: line[0...count]))
        }
    }

    private static func put3(_ line: UnsafeMutableBufferPointer<UInt8>, _ at: Int,
                             _ a: Unicode.Scalar, _ b: Unicode.Scalar, _ c: Unicode.Scalar) -> Int {
        line[at] = UInt8(ascii: a)
        line[at + 1] = UInt8(ascii: b)
        line[at + 2] = UInt8(ascii: c)
        return at + 3
    }

    /// Writes `value` in decimal at `line[at...]` (room for 20 digits needed); returns the end.
    private static func putDecimal(_ value: UInt64, _ line: UnsafeMutableBufferPointer<UInt8>, _ at: Int) -> Int {
        var digits = 1
        var rest = value / 10
        while rest > 0 {
            digits += 1
            rest /= 10
        }
        rest = value
        var index = at + digits - 1
        repeat {
            line[index] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
            rest /= 10
            index -= 1
        } while rest > 0
        return at + digits
    }

    /// `ok\n` (a successful `a`)
    public static let okay: [UInt8] = Array("ok\n".utf8)

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
}
