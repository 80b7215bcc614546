import Foundation

/// Self-checking values: 4 bytes of total length (little endian), 4 bytes of FNV-1a 32 of the
/// rest, then the rest. A torn value (a mix of two writes) fails `problem(_:)`.
enum CheckedValue {
    static func fnv(_ bytes: ArraySlice<UInt8>, seed: UInt32) -> UInt32 {
        var h: UInt32 = 2_166_136_261 ^ seed
        for b in bytes {
            h ^= UInt32(b)
            h = h &* 16_777_619
        }
        return h
    }

    /// A value of `length` bytes (at least 8).
    static func make<G: RandomNumberGenerator>(length: Int, using g: inout G) -> [UInt8] {
        let length = max(8, length)
        var v = [UInt8](repeating: 0, count: length)
        let tag = UInt8.random(in: 0...255, using: &g)
        for i in 8..<length { v[i] = tag &+ UInt8(truncatingIfNeeded: i &* 31) ^ UInt8.random(in: 0...3, using: &g) }
        let len = UInt32(length)
        let h = fnv(v[8...], seed: len)
        for i in 0..<4 {
            v[i] = UInt8(truncatingIfNeeded: len >> (8 * UInt32(i)))
            v[4 + i] = UInt8(truncatingIfNeeded: h >> (8 * UInt32(i)))
        }
        return v
    }

    /// nil when `v` is a whole value made by `make`; else what is wrong.
    static func problem(_ v: [UInt8]) -> String? {
        guard v.count >= 8 else { return "only \(v.count) bytes" }
        var len: UInt32 = 0
        var h: UInt32 = 0
        for i in 0..<4 {
            len |= UInt32(v[i]) << (8 * UInt32(i))
            h |= UInt32(v[4 + i]) << (8 * UInt32(i))
        }
        if Int(len) != v.count { return "length field \(len) but \(v.count) bytes" }
        if fnv(v[8...], seed: len) != h { return "checksum mismatch in \(v.count) bytes" }
        return nil
    }
}
