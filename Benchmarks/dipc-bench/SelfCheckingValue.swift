/// Values that say where they came from, for `--verify`.
///
/// Layout (little-endian): key `UInt32`, writer `UInt32`, sequence `UInt64`, then a
/// filler derived from those three. A value read back must name the key it was read
/// from (else it is foreign) and carry the filler its header implies (else it is torn:
/// header and body from different writes) and have the size written.
enum SelfCheckingValue {
    static let headerSize = 16
    /// The smallest value `--verify` can check.
    static let minimumSize = 24

    /// Writes the value for (`key`, `writer`, `sequence`) into `bytes`.
    static func fill(_ bytes: UnsafeMutableRawBufferPointer, key: Int, writer: Int, sequence: UInt64) {
        precondition(bytes.count >= minimumSize)
        bytes.storeBytes(of: UInt32(truncatingIfNeeded: key).littleEndian, toByteOffset: 0, as: UInt32.self)
        bytes.storeBytes(of: UInt32(truncatingIfNeeded: writer).littleEndian, toByteOffset: 4, as: UInt32.self)
        bytes.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
        let seed = mix(key: key, writer: writer, sequence: sequence)
        var offset = headerSize
        var word = seed
        while offset + 8 <= bytes.count {
            bytes.storeBytes(of: word, toByteOffset: offset, as: UInt64.self)
            word = step(word)
            offset += 8
        }
        while offset < bytes.count {
            bytes[offset] = UInt8(truncatingIfNeeded: word >> UInt64((offset & 7) * 8))
            offset += 1
        }
    }

    /// Nil when `bytes` is a whole value written for `key` with `expectedSize` bytes,
    /// else what is wrong with it.
    static func check(_ bytes: UnsafeRawBufferPointer, key: Int, expectedSize: Int) -> String? {
        guard bytes.count == expectedSize else { return "value of key \(key) has \(bytes.count) bytes, not \(expectedSize)" }
        let foundKey = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let writer = Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
        let sequence = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard foundKey == key else { return "foreign value: key \(key) holds a value written for key \(foundKey)" }
        var offset = headerSize
        var word = mix(key: key, writer: writer, sequence: sequence)
        while offset + 8 <= bytes.count {
            guard bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self) == word else {
                return "torn value: key \(key), writer \(writer), sequence \(sequence), body differs at byte \(offset)"
            }
            word = step(word)
            offset += 8
        }
        while offset < bytes.count {
            guard bytes[offset] == UInt8(truncatingIfNeeded: word >> UInt64((offset & 7) * 8)) else {
                return "torn value: key \(key), writer \(writer), sequence \(sequence), body differs at byte \(offset)"
            }
            offset += 1
        }
        return nil
    }

    private static func mix(key: Int, writer: Int, sequence: UInt64) -> UInt64 {
        step(UInt64(truncatingIfNeeded: key) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(truncatingIfNeeded: writer) << 32 ^ sequence)
    }

    /// SplitMix64's output function: every bit of the input changes the output.
    static func step(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A small, fast per-thread pseudo-random generator (SplitMix64).
struct FastRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SelfCheckingValue.step(state &- 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in 0..<bound.
    mutating func below(_ bound: Int) -> Int { Int(truncatingIfNeeded: (next() >> 11) % UInt64(bound)) }

    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
