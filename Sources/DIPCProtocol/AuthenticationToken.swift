/// The shape of an `--auth-file` token and of the TOKEN of `a TOKEN` (SPEC §1, §2):
/// 16-200 visible ASCII characters (0x21-0x7e), so it is one field of a header line.
public enum AuthenticationToken {
    public static let minimumLength = 16
    public static let maximumLength = 200

    /// Whether `bytes` has the shape of a token.
    public static func isValid<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        (minimumLength...maximumLength).contains(bytes.count) && bytes.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// Whether `offered` equals `expected`, in time that depends on neither's content
    /// nor on where they differ: every comparison runs over `maximumLength` bytes.
    public static func matches(_ offered: [UInt8], _ expected: [UInt8]) -> Bool {
        var difference = UInt(bitPattern: offered.count ^ expected.count)
        for index in 0..<maximumLength {
            let a = index < offered.count ? offered[index] : 0
            let b = index < expected.count ? expected[index] : 0
            difference |= UInt(a ^ b)
        }
        return difference == 0
    }
}
