import DIPCCore
import Atomics

/// A `BlockBackend` whose whole store (control region and mailbox blocks) lives in
/// one `SharedSegment`, laid out as `StoreLayout` describes. The System V and POSIX
/// backends are this type over their own segment.
public final class MappedBlockBackend: BlockBackend {
    /// Test-only pause mid-copy (debug builds, `DIPC_TEST_HOLD`).
    private let holdPoints = HoldPoints()
    public let geometry: StoreGeometry
    public let segment: SharedSegment
    private let blocks: UnsafeMutableRawPointer
    private let stride: Int
    private let capacity: Int
    /// The store's name, for the message of a corrupt-block error.
    private let name: String

    /// Opens store `name` of `geometry` in the segment that `openSegment` maps for the
    /// store's whole size (creating it when the backend is asked to create); nil when
    /// `openSegment` finds no segment. A segment this open created is removed again
    /// when it does not fit `geometry`.
    public static func open(name: String, geometry: StoreGeometry,
                            openSegment: (_ size: Int) throws -> SharedSegment?) throws -> MappedBlockBackend? {
        guard let size = StoreLayout.mappedSize(for: geometry) else {
            throw StoreError.tooLarge("\(geometry) is too large to address")
        }
        guard let segment = try openSegment(size) else { return nil }
        do {
            return try MappedBlockBackend(segment: segment, geometry: geometry, name: name)
        } catch {
            segment.unmap()
            if segment.created { try? segment.remove() }
            throw error
        }
    }

    /// Wraps `segment` for a store of `geometry`; throws `StoreError.geometryMismatch`
    /// or `.corrupt` when the segment is too small for it. The caller unmaps the
    /// segment when this throws.
    public init(segment: SharedSegment, geometry: StoreGeometry, name: String) throws {
        guard let needed = StoreLayout.mappedSize(for: geometry) else {
            throw StoreError.tooLarge("\(geometry) is too large to address")
        }
        if segment.size < needed {
            // Made for another geometry: say which, when its header is readable.
            if segment.size >= StoreLayout.headerSize {
                let header = StoreHeader(at: segment.base)
                let (mailboxes, size) = header.storedGeometry
                if header.storedMagic == StoreHeader.magic, mailboxes > 0, size > 0,
                   mailboxes != UInt64(geometry.mailboxes) || size != UInt64(geometry.mailboxSize) {
                    throw StoreError.geometryMismatch(
                        name: name,
                        existing: StoreGeometry(mailboxes: Int(clamping: mailboxes), mailboxSize: Int(clamping: size)),
                        requested: geometry)
                }
            }
            throw StoreError.corrupt(name: name, reason: "its shared memory has \(segment.size) bytes, \(geometry) needs \(needed)")
        }
        self.geometry = geometry
        self.segment = segment
        self.blocks = segment.base + StoreLayout.controlSize(for: geometry)
        self.stride = StoreLayout.blockStride(for: geometry)
        self.capacity = StoreLayout.slotCapacity(for: geometry)
        self.name = name
    }

    public var control: UnsafeMutableRawPointer { segment.base }
    public var createdControl: Bool { segment.created }
    public var recordFields: [(String, String)] { segment.recordFields }
    public var creatorIsAlive: Bool { segment.creatorIsAlive }
    public func creationFinished() { segment.creationFinished() }

    // MARK: block layout

    private func block(_ mailbox: Int) -> UnsafeMutableRawPointer {
        blocks + mailbox * stride
    }

    private func stateWord(_ mailbox: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: block(mailbox).assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }

    private func slot(_ mailbox: Int, _ index: UInt64) -> UnsafeMutableRawPointer {
        block(mailbox) + StoreLayout.blockHeaderSize + Int(index) * (StoreLayout.slotHeaderSize + capacity)
    }

    /// A slot's header: bytes used, message count, offset of the newest message.
    ///
    /// Shared memory is written by other processes, so every field read from it is
    /// checked (`SlotHeader(at:mailbox:in:)`) before it is used as a length or an offset:
    /// a corrupted field gives `StoreError.corrupt`, never a trap or an access outside
    /// the slot.
    private struct SlotHeader {
        var used: Int
        var count: Int
        var lastOffset: Int

        /// Reads and checks the header of `slot` (of `mailbox`, a slot of `capacity` data
        /// bytes): `used` within the data area, at least `messageOverhead` bytes per message,
        /// no messages exactly when nothing is used, and the newest message's offset inside
        /// the used bytes.
        init(at slot: UnsafeMutableRawPointer, mailbox: Int, in backend: MappedBlockBackend) throws {
            let used = slot.load(fromByteOffset: 0, as: UInt64.self)
            let count = slot.load(fromByteOffset: 8, as: UInt64.self)
            let lastOffset = slot.load(fromByteOffset: 16, as: UInt64.self)
            let capacity = UInt64(backend.capacity)
            let overhead = UInt64(StoreLayout.messageOverhead)
            guard used <= capacity, count <= used / overhead, (count == 0) == (used == 0),
                  count == 0 || lastOffset <= used - overhead
            else {
                throw backend.corruption(mailbox, "slot header used=\(used) count=\(count) lastOffset=\(lastOffset) (data area \(capacity) bytes)")
            }
            self.used = Int(used)
            self.count = Int(count)
            self.lastOffset = Int(lastOffset)
        }

        init(used: Int, count: Int, lastOffset: Int) {
            self.used = used
            self.count = count
            self.lastOffset = lastOffset
        }

        func store(at slot: UnsafeMutableRawPointer) {
            slot.storeBytes(of: UInt64(used), toByteOffset: 0, as: UInt64.self)
            slot.storeBytes(of: UInt64(count), toByteOffset: 8, as: UInt64.self)
            slot.storeBytes(of: UInt64(lastOffset), toByteOffset: 16, as: UInt64.self)
        }
    }

    /// The error for a block whose bytes break the layout (`what` says which field).
    private func corruption(_ mailbox: Int, _ what: String) -> StoreError {
        .corrupt(name: name, reason: "mailbox \(mailbox) has a corrupt block: \(what)")
    }

    private func data(_ slot: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        slot + StoreLayout.slotHeaderSize
    }

    /// Makes `spare` current with version+1 in one store: the commit point of every change.
    private func publish(_ mailbox: Int, spare: UInt64, after state: UInt64) -> UInt64 {
        let version = (state >> 1) + 1
        stateWord(mailbox).store(version << 1 | spare, ordering: .releasing)
        return version
    }

    /// Copies the message at `offset` of a slot whose checked header is `header`; throws
    /// `StoreError.corrupt` when its length field reaches past the used bytes.
    private func copyMessage(at offset: Int, in slot: UnsafeMutableRawPointer, header: SlotHeader, mailbox: Int,
                             into buffer: inout [UInt8]) throws {
        let base = data(slot) + offset
        let length = base.loadUnaligned(as: UInt64.self)
        // offset + overhead <= used is the header's check; the length must fit what is left.
        guard length <= UInt64(header.used - offset - StoreLayout.messageOverhead) else {
            throw corruption(mailbox, "message length \(length) at offset \(offset) exceeds the \(header.used) bytes in use")
        }
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: base + StoreLayout.messageOverhead, count: Int(length)))
    }

    // MARK: BlockBackend

    public func readNewest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64 {
        let state = stateWord(mailbox).load(ordering: .acquiring)
        let current = slot(mailbox, state & 1)
        let header = try SlotHeader(at: current, mailbox: mailbox, in: self)
        if header.count == 0 {
            buffer.removeAll(keepingCapacity: true)
        } else {
            try copyMessage(at: header.lastOffset, in: current, header: header, mailbox: mailbox, into: &buffer)
        }
        return state >> 1
    }

    public func version(of mailbox: Int) throws -> UInt64 {
        stateWord(mailbox).load(ordering: .acquiring) >> 1
    }

    public func replace(_ mailbox: Int, with value: UnsafeRawBufferPointer) throws -> UInt64 {
        let state = stateWord(mailbox).load(ordering: .acquiring)
        let spareIndex = (state & 1) ^ 1
        let spare = slot(mailbox, spareIndex)
        let area = data(spare)
        area.storeBytes(of: UInt64(value.count), as: UInt64.self)
        if value.count > 0 {
            // Two halves, so that a crash test can stop the copy in the middle.
            let half = value.count / 2
            (area + StoreLayout.messageOverhead).copyMemory(from: value.baseAddress!, byteCount: half)
            holdPoints.reach(.midCopy, mailbox: mailbox)
            (area + StoreLayout.messageOverhead + half).copyMemory(from: value.baseAddress! + half, byteCount: value.count - half)
        }
        SlotHeader(used: StoreLayout.messageOverhead + value.count, count: 1, lastOffset: 0).store(at: spare)
        return publish(mailbox, spare: spareIndex, after: state)
    }

    public func append(_ mailbox: Int, _ value: UnsafeRawBufferPointer) throws -> UInt64? {
        let state = stateWord(mailbox).load(ordering: .acquiring)
        let current = slot(mailbox, state & 1)
        let header = try SlotHeader(at: current, mailbox: mailbox, in: self)
        guard StoreLayout.fits(used: header.used, adding: value.count, in: geometry) else { return nil }
        let spareIndex = (state & 1) ^ 1
        let spare = slot(mailbox, spareIndex)
        if header.used > 0 {
            data(spare).copyMemory(from: data(current), byteCount: header.used)
        }
        let end = data(spare) + header.used
        end.storeBytes(of: UInt64(value.count), as: UInt64.self)
        if value.count > 0 {
            (end + StoreLayout.messageOverhead).copyMemory(from: value.baseAddress!, byteCount: value.count)
        }
        SlotHeader(used: header.used + StoreLayout.messageOverhead + value.count, count: header.count + 1,
                   lastOffset: header.used).store(at: spare)
        return publish(mailbox, spare: spareIndex, after: state)
    }

    public func takeOldest(_ mailbox: Int, into buffer: inout [UInt8]) throws -> UInt64? {
        let state = stateWord(mailbox).load(ordering: .acquiring)
        let current = slot(mailbox, state & 1)
        let header = try SlotHeader(at: current, mailbox: mailbox, in: self)
        guard header.count > 0 else { return nil }
        try copyMessage(at: 0, in: current, header: header, mailbox: mailbox, into: &buffer)
        let taken = StoreLayout.messageOverhead + buffer.count
        // The rest must still hold count-1 messages, the newest of them after the one taken.
        guard header.count == 1 ? taken == header.used : header.lastOffset >= taken else {
            throw corruption(mailbox, "the oldest message (\(taken) bytes) overlaps the rest (newest at \(header.lastOffset), \(header.used) used)")
        }
        let spareIndex = (state & 1) ^ 1
        let spare = slot(mailbox, spareIndex)
        let remaining = header.used - taken
        if remaining > 0 {
            data(spare).copyMemory(from: data(current) + taken, byteCount: remaining)
        }
        let rest = SlotHeader(used: remaining, count: header.count - 1,
                              lastOffset: header.count > 1 ? header.lastOffset - taken : 0)
        rest.store(at: spare)
        return publish(mailbox, spare: spareIndex, after: state)
    }

    public func queueState(_ mailbox: Int) throws -> QueueState {
        let state = stateWord(mailbox).load(ordering: .acquiring)
        let header = try SlotHeader(at: slot(mailbox, state & 1), mailbox: mailbox, in: self)
        return QueueState(count: header.count, usedBytes: header.used)
    }

    public func close(removing: Bool) throws {
        segment.unmap()
        if removing { try segment.remove() }
    }
}
