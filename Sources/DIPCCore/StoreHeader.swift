import Atomics

/// The header at the start of a store's control region: identity (magic, format,
/// name), geometry, coordinator policy, lifecycle state, the mutex that serialises
/// attach and detach, and the table of attached servers.
///
/// Layout (bytes): 0 magic u64 · 8 format u32 · 12 policy u32 · 16 mailboxes u64 ·
/// 24 mailboxSize u64 · 32 state u32 · 36 name length u32 · 40 name (64) ·
/// 128 attach mutex (64) · 192 server slots (32 × 32: pid i32, pad, start time u64,
/// port u64, reserved). The layout depends on glibc's `pthread_mutex_t`, hence the format version.
public struct StoreHeader: @unchecked Sendable {
    public static let magic: UInt64 = 0x3154_535F_4350_4944  // "DIPC_ST1" little-endian
    public static let formatVersion: UInt32 = 1

    /// Lifecycle of a store, in `state`.
    public enum State: UInt32 {
        case formatting = 0
        case ready = 1
        case removed = 2
    }

    private static let slotsOffset = 192
    private static let slotSize = 32

    public let base: UnsafeMutableRawPointer

    public init(at base: UnsafeMutableRawPointer) {
        self.base = base
    }

    // MARK: fields

    public var storedMagic: UInt64 { base.load(fromByteOffset: 0, as: UInt64.self) }
    public var storedFormat: UInt32 { base.load(fromByteOffset: 8, as: UInt32.self) }
    public var storedPolicyCode: UInt32 { base.load(fromByteOffset: 12, as: UInt32.self) }
    public var storedGeometry: (mailboxes: UInt64, mailboxSize: UInt64) {
        (base.load(fromByteOffset: 16, as: UInt64.self), base.load(fromByteOffset: 24, as: UInt64.self))
    }
    public var storedName: String {
        let length = min(Int(base.load(fromByteOffset: 36, as: UInt32.self)), StoreName.maximumLength)
        return String(decoding: UnsafeRawBufferPointer(start: base + 40, count: length), as: UTF8.self)
    }

    private var stateWord: UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (base + 32).assumingMemoryBound(to: UnsafeAtomic<UInt32>.Storage.self))
    }

    /// The lifecycle state (acquire load).
    public var state: State? { State(rawValue: stateWord.load(ordering: .acquiring)) }

    /// Publishes a new lifecycle state (release store).
    public func setState(_ state: State) {
        stateWord.store(state.rawValue, ordering: .releasing)
    }

    /// The mutex that serialises attach, detach and removal.
    public var attachMutex: RobustMutex { RobustMutex(at: base + 128) }

    // MARK: formatting and validation

    /// Writes identity, geometry and policy into zero-filled memory and initialises the
    /// attach mutex. The state stays `.formatting` until the caller publishes `.ready`.
    public func format(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy) throws {
        base.storeBytes(of: StoreHeader.formatVersion, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: policy.storedCode, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: UInt64(geometry.mailboxes), toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt64(geometry.mailboxSize), toByteOffset: 24, as: UInt64.self)
        let nameBytes = Array(name.utf8.prefix(StoreName.maximumLength))
        base.storeBytes(of: UInt32(nameBytes.count), toByteOffset: 36, as: UInt32.self)
        nameBytes.withUnsafeBytes { (base + 40).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        try attachMutex.initialize()
        base.storeBytes(of: StoreHeader.magic, toByteOffset: 0, as: UInt64.self)
    }

    /// Throws unless the header describes store `name` with this geometry and policy.
    public func validate(name: String, geometry: StoreGeometry, policy: CoordinatorPolicy) throws {
        guard storedMagic == StoreHeader.magic else {
            throw StoreError.corrupt(name: name, reason: "bad magic number (not a DIPC store, or an IPC key collision)")
        }
        guard storedFormat == StoreHeader.formatVersion else {
            throw StoreError.corrupt(name: name, reason: "format version \(storedFormat), this dipc reads \(StoreHeader.formatVersion)")
        }
        guard storedName == name else {
            throw StoreError.corrupt(name: name, reason: "it belongs to store \"\(storedName)\" (IPC key collision)")
        }
        let (mailboxes, size) = storedGeometry
        guard mailboxes == UInt64(geometry.mailboxes), size == UInt64(geometry.mailboxSize) else {
            let existing = StoreGeometry(mailboxes: Int(clamping: max(mailboxes, 1)), mailboxSize: Int(clamping: max(size, 1)))
            throw StoreError.geometryMismatch(name: name, existing: existing, requested: geometry)
        }
        guard storedPolicyCode == policy.storedCode else {
            let existing = CoordinatorPolicy(storedCode: storedPolicyCode)?.rawValue ?? "unknown"
            throw StoreError.coordinatorMismatch(name: name, existing: existing, requested: policy.rawValue)
        }
    }

    // MARK: server slots

    private func slotPID(_ slot: Int) -> UnsafeAtomic<Int32> {
        UnsafeAtomic(at: (base + StoreHeader.slotsOffset + slot * StoreHeader.slotSize)
            .assumingMemoryBound(to: UnsafeAtomic<Int32>.Storage.self))
    }

    private func slotStartTime(_ slot: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + StoreHeader.slotsOffset + slot * StoreHeader.slotSize + 8)
            .assumingMemoryBound(to: UnsafeAtomic<UInt64>.Storage.self))
    }

    /// The process recorded in `slot`, or nil when the slot is free.
    public func occupant(of slot: Int) -> ProcessIdentity? {
        let pid = slotPID(slot).load(ordering: .acquiring)
        guard pid != 0 else { return nil }
        return ProcessIdentity(pid: pid, startTime: slotStartTime(slot).load(ordering: .acquiring))
    }

    /// Whether the server in `slot` is a live process (false for a free slot). A slot
    /// that changes hands while it is being read counts as alive.
    public func isSlotAlive(_ slot: Int) -> Bool {
        let pid = slotPID(slot).load(ordering: .acquiring)
        guard pid != 0 else { return false }
        let start = slotStartTime(slot).load(ordering: .acquiring)
        guard slotPID(slot).load(ordering: .acquiring) == pid else { return true }
        return ProcessIdentity(pid: pid, startTime: start).isAlive
    }

    /// Records `identity` in `slot`. Call with the attach mutex held, on a free slot.
    public func claim(slot: Int, for identity: ProcessIdentity) {
        slotStartTime(slot).store(identity.startTime, ordering: .releasing)
        slotPID(slot).store(identity.pid, ordering: .releasing)
    }

    /// Frees `slot`. Call with the attach mutex held.
    public func release(slot: Int) {
        slotPID(slot).store(0, ordering: .releasing)
        slotStartTime(slot).store(0, ordering: .releasing)
    }
}
