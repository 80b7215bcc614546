/// The self-checking values the soak writes and pushes.
///
/// Layout (little-endian): `DSK1`, writer (UInt32), sequence (UInt64), payload length
/// (UInt32), payload, then the 64-bit FNV-1a of everything before it. A value that does
/// not parse or whose checksum differs is torn.
struct SoakValue: Hashable, Sendable {
    /// The worker that made it.
    var writer: UInt32
    /// The worker's attempt number (every attempted write or push gets a new one).
    var sequence: UInt64

    static let magic: [UInt8] = Array("DSK1".utf8)
    static let overhead = 4 + 4 + 8 + 4 + 8

    /// The bytes of this value with `payloadLength` bytes of filler derived from it.
    func encoded(payloadLength: Int) -> [UInt8] {
        var out = Self.magic
        out.reserveCapacity(Self.overhead + payloadLength)
        appendLittleEndian(writer, to: &out)
        appendLittleEndian(sequence, to: &out)
        appendLittleEndian(UInt32(payloadLength), to: &out)
        var filler = sequence &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(writer)
        for _ in 0..<payloadLength {
            filler = filler &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            out.append(UInt8(truncatingIfNeeded: filler >> 56))
        }
        appendLittleEndian(Self.checksum(out[...]), to: &out)
        return out
    }

    /// The value `bytes` carries, or nil when they are not a whole, intact value.
    static func decode(_ bytes: [UInt8]) -> SoakValue? {
        guard bytes.count >= overhead, Array(bytes[0..<4]) == magic else { return nil }
        let length = Int(readLittleEndian(bytes, at: 16, as: UInt32.self))
        guard bytes.count == overhead + length else { return nil }
        let end = bytes.count - 8
        guard checksum(bytes[0..<end]) == readLittleEndian(bytes, at: end, as: UInt64.self) else { return nil }
        return SoakValue(
            writer: readLittleEndian(bytes, at: 4, as: UInt32.self), sequence: readLittleEndian(bytes, at: 8, as: UInt64.self))
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}

private func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
    withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
}

private func readLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int, as: T.Type) -> T {
    var value: T = 0
    for index in (0..<MemoryLayout<T>.size).reversed() { value = value << 8 | T(bytes[offset + index]) }
    return value
}
