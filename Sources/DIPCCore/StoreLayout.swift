/// Sizes and offsets shared by every backend: the control region (store header then
/// coordinator state) and, for memory-mapped backends, the mailbox blocks after it.
///
/// A mailbox block is `state` (8 bytes: `version << 1 | current slot`), 8 reserved
/// bytes, then two message slots. A writer fills the spare slot and publishes it by
/// storing `state` once, so a writer killed mid-copy leaves the old content intact.
/// A slot is a 32-byte slot header (`used`, `count`, `lastOffset`, reserved) and a
/// data area of `mailboxSize + messageOverhead` bytes holding messages as
/// `[UInt64 length][bytes]`.
public enum StoreLayout {
    /// Bytes reserved for the store header at the start of the control region.
    public static let headerSize = 4096
    /// Bytes each message costs beyond its data (its length field).
    public static let messageOverhead = 8
    /// Bytes of a slot header.
    public static let slotHeaderSize = 32
    /// Bytes before the first slot of a block.
    public static let blockHeaderSize = 16

    /// The control region's size: header plus the coordinator's per-mailbox state.
    public static func controlSize(for geometry: StoreGeometry) -> Int {
        headerSize + Coordinator.regionSize(mailboxes: geometry.mailboxes)
    }

    /// Bytes of one slot's data area: room for one message of `mailboxSize` bytes.
    /// Messages fit while their lengths plus `messageOverhead` each add up to at most this.
    public static func slotCapacity(for geometry: StoreGeometry) -> Int {
        geometry.mailboxSize + messageOverhead
    }

    /// Whether a list using `used` bytes has room for another message of `length` bytes.
    public static func fits(used: Int, adding length: Int, in geometry: StoreGeometry) -> Bool {
        used + messageOverhead + length <= slotCapacity(for: geometry)
    }

    /// Distance between consecutive mailbox blocks (a multiple of 64).
    public static func blockStride(for geometry: StoreGeometry) -> Int {
        roundUp(blockHeaderSize + 2 * (slotHeaderSize + slotCapacity(for: geometry)), to: 64)
    }

    /// Total bytes of a memory-mapped store, or nil when it overflows.
    public static func mappedSize(for geometry: StoreGeometry) -> Int? {
        let (blocks, o1) = blockStride(for: geometry).multipliedReportingOverflow(by: geometry.mailboxes)
        let (total, o2) = blocks.addingReportingOverflow(controlSize(for: geometry))
        return o1 || o2 ? nil : total
    }

    public static func roundUp(_ value: Int, to multiple: Int) -> Int {
        (value + multiple - 1) / multiple * multiple
    }
}
