import DIPCCore

/// The records of a DIPC TDB file. All integers are little-endian.
///
/// - `dipc:header` (32 bytes): magic `"DIPCTDB1"` (u64), format version (u32),
///   coordinator policy (u32: `CoordinatorPolicy.storedCode`, 0 when not recorded, as in
///   files made before it was), mailboxes (u64), mailbox size in bytes (u64).
/// - `m:N` for mailbox N (decimal): version (u64), message count (u64), offset of the
///   newest message in the list (u64), then the list: messages as `[u64 length][bytes]`,
///   oldest first, exactly as in a mapped slot; the list's length obeys `StoreLayout.fits`.
///   A missing record is a never-written mailbox: version 0, empty.
enum TDBRecords {
    static let headerKey = "dipc:header"
    static let magic: UInt64 = 0x3142_4454_4350_4944  // "DIPCTDB1" little-endian
    static let formatVersion: UInt32 = 1
    static let headerSize = 32
    /// Bytes before a mailbox record's list.
    static let mailboxHeaderSize = 24

    static func mailboxKey(_ mailbox: Int) -> String { "m:\(mailbox)" }

    static func encodeHeader(_ geometry: StoreGeometry, policy: CoordinatorPolicy?) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        bytes.withUnsafeMutableBytes { p in
            p.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt64.self)
            p.storeBytes(of: formatVersion.littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: (policy?.storedCode ?? 0).littleEndian, toByteOffset: 12, as: UInt32.self)
            p.storeBytes(of: UInt64(geometry.mailboxes).littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: UInt64(geometry.mailboxSize).littleEndian, toByteOffset: 24, as: UInt64.self)
        }
        return bytes
    }

    /// Throws unless `bytes` is a DIPC header of this format for `geometry` and, when
    /// both the header and the caller name one, `policy`.
    static func validateHeader(_ bytes: UnsafeRawBufferPointer, geometry: StoreGeometry, policy: CoordinatorPolicy?,
                               name: String, path: String) throws {
        guard bytes.count == headerSize, load(UInt64.self, bytes, 0) == magic else {
            throw StoreError.corrupt(name: name, reason: "\(path) is a TDB file but its \(headerKey) record is not a DIPC header")
        }
        let format = load(UInt32.self, bytes, 8)
        guard format == formatVersion else {
            throw StoreError.corrupt(name: name, reason: "\(path) has DIPC format version \(format), this dipc reads \(formatVersion)")
        }
        let mailboxes = load(UInt64.self, bytes, 16)
        let size = load(UInt64.self, bytes, 24)
        guard mailboxes == UInt64(geometry.mailboxes), size == UInt64(geometry.mailboxSize) else {
            let existing = StoreGeometry(mailboxes: Int(clamping: max(mailboxes, 1)), mailboxSize: Int(clamping: max(size, 1)))
            throw StoreError.geometryMismatch(name: name, existing: existing, requested: geometry)
        }
        let storedPolicy = load(UInt32.self, bytes, 12)
        if let policy, storedPolicy != 0, storedPolicy != policy.storedCode {
            let existing = CoordinatorPolicy(storedCode: storedPolicy)?.rawValue ?? "unknown (code \(storedPolicy))"
            throw StoreError.coordinatorMismatch(name: name, existing: existing, requested: policy.rawValue)
        }
    }

    /// A decoded mailbox record; `list` points into the record's bytes.
    struct Mailbox {
        var version: UInt64
        var count: Int
        var newestOffset: Int
        var list: UnsafeRawBufferPointer

        /// The newest message (empty when the list is).
        var newest: UnsafeRawBufferPointer {
            count > 0 ? message(at: newestOffset) : UnsafeRawBufferPointer(start: nil, count: 0)
        }

        /// The message at `offset` of the list.
        func message(at offset: Int) -> UnsafeRawBufferPointer {
            let length = Int(TDBRecords.load(UInt64.self, list, offset))
            return UnsafeRawBufferPointer(rebasing: list[(offset + StoreLayout.messageOverhead)...].prefix(length))
        }
    }

    /// Decodes a mailbox record and checks what the operations rely on: the list fits
    /// the mailbox, and the oldest and the newest message lie inside it, the newest
    /// ending exactly at the list's end.
    static func decodeMailbox(_ bytes: UnsafeRawBufferPointer, geometry: StoreGeometry, damaged: () -> Error) throws
        -> Mailbox
    {
        guard bytes.count >= mailboxHeaderSize else { throw damaged() }
        let list = UnsafeRawBufferPointer(rebasing: bytes[mailboxHeaderSize...])
        guard list.count <= StoreLayout.slotCapacity(for: geometry) else { throw damaged() }
        let count = load(UInt64.self, bytes, 8)
        let newest = load(UInt64.self, bytes, 16)
        if count == 0 {
            guard list.isEmpty, newest == 0 else { throw damaged() }
        } else {
            let overhead = UInt64(StoreLayout.messageOverhead)
            guard count <= UInt64(list.count) / overhead, newest <= UInt64(list.count) - overhead,
                  load(UInt64.self, list, 0) <= UInt64(list.count) - overhead,
                  newest + overhead + load(UInt64.self, list, Int(newest)) == UInt64(list.count),
                  count > 1 || newest == 0
            else { throw damaged() }
        }
        return Mailbox(version: load(UInt64.self, bytes, 0), count: Int(count), newestOffset: Int(newest), list: list)
    }

    /// Just the version of a mailbox record.
    static func version(_ bytes: UnsafeRawBufferPointer, damaged: () -> Error) throws -> UInt64 {
        guard bytes.count >= mailboxHeaderSize else { throw damaged() }
        return load(UInt64.self, bytes, 0)
    }

    /// Builds a mailbox record from its version and its list, given as pieces laid end to end.
    static func encodeMailbox(version: UInt64, count: Int, newestOffset: Int, pieces: [UnsafeRawBufferPointer]) -> [UInt8] {
        let total = mailboxHeaderSize + pieces.reduce(0) { $0 + $1.count }
        return [UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
            let raw = UnsafeMutableRawBufferPointer(buffer)
            raw.storeBytes(of: version.littleEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: UInt64(count).littleEndian, toByteOffset: 8, as: UInt64.self)
            raw.storeBytes(of: UInt64(newestOffset).littleEndian, toByteOffset: 16, as: UInt64.self)
            var at = mailboxHeaderSize
            for piece in pieces where piece.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: raw[at...]).copyMemory(from: piece)
                at += piece.count
            }
            initialized = total
        }
    }

    static func load<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ offset: Int) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
