/// The one layout table of a mailbox's coordinator record: every field, its offset
/// and its size. `CoordinatorRecord` (the readers-writer lock) and `WaiterLine` (the
/// queue waiting lines of `QueueWaiters`) take their offsets from here and from
/// nowhere else.
///
/// The layout is a store format: every process attached to a store shares it, and a
/// tdb store keeps it in its coordinator map. Changing an offset or a size changes the
/// format (`StoreHeader.formatVersion`). `CoordinatorRecordLayoutTests` pins every
/// value and checks that fields do not overlap, are naturally aligned, keep pthread
/// objects at 64-byte-aligned offsets and fit in the record.
///
/// | offset | size | field | content |
/// |-------:|-----:|-------|---------|
/// | 0      | 64   | `mutex` | robust process-shared mutex guarding everything below except `change*` and the lines |
/// | 64     | 4    | `wake` | futex word lock waiters sleep on; bumped whenever a waiter may progress |
/// | 68     | 4    | `epoch` | bumped when outstanding tickets are voided (recovery) |
/// | 72     | 4    | `next` | next ticket to hand out (fifo: every access; phase-fair: writers) |
/// | 76     | 4    | `serving` | ticket allowed to enter next |
/// | 80     | 4    | `writer` | slot + 1 of the write-lock holder, 0 when none |
/// | 84     | 4    | `activeReaders` | sum of the slots' `readHolds` |
/// | 88     | 4    | `ticketHolders` | sum of the slots' `tickets` (threads waiting with a ticket) |
/// | 92     | 4    | `blockedReaders` | sum of the slots' `blocked` (phase-fair readers waiting for a writer to leave) |
/// | 96     | 4    | `phase` | bumped each time blocked readers are admitted together (phase-fair) |
/// | 100    | 28   | — | unused (zero) |
/// | 128    | 4    | `change` | change counter watchers sleep on (atomic, no mutex) |
/// | 132    | 4    | `changeWatchers` | nonzero when someone may sleep on `change` |
/// | 136    | 28   | `consumerLine` | `QueueWaiters` line of waiting `c` requests (`Line` below; atomics, no mutex) |
/// | 164    | 28   | `producerLine` | `QueueWaiters` line of waiting `p` requests (`Line` below; atomics, no mutex) |
/// | 192    | 512  | `slots` | 32 server slots × 16 bytes (`Slot` below) |
///
/// Every field but the mutex is made of `UInt32` words accessed through atomics.
/// Records follow each other in the coordinator region, so `size` is a multiple of 64
/// and every record's mutex stays 64-byte aligned.
enum CoordinatorRecordLayout {
    /// Bytes per record (the stride of the coordinator region).
    static let size = 704

    /// How a field is accessed, which fixes the alignment it needs.
    enum Kind: Sendable {
        /// A pthread object (`RobustMutex.reservedSize` bytes); glibc-specific layout,
        /// placed at a 64-byte-aligned offset.
        case pthreadObject
        /// One `UInt32` word, or an array or structure of them.
        case words

        /// The alignment the field's offset must have.
        var alignment: Int {
            switch self {
            case .pthreadObject: return 64
            case .words: return MemoryLayout<UInt32>.alignment
            }
        }
    }

    /// The fields of a record; offsets in bytes from the record's start.
    enum Field: CaseIterable, Sendable {
        case mutex
        case wake, epoch, next, serving, writer, activeReaders, ticketHolders, blockedReaders, phase
        case change, changeWatchers
        case consumerLine, producerLine
        case slots

        var offset: Int {
            switch self {
            case .mutex: return 0
            case .wake: return 64
            case .epoch: return 68
            case .next: return 72
            case .serving: return 76
            case .writer: return 80
            case .activeReaders: return 84
            case .ticketHolders: return 88
            case .blockedReaders: return 92
            case .phase: return 96
            case .change: return 128
            case .changeWatchers: return 132
            case .consumerLine: return 136
            case .producerLine: return 164
            case .slots: return 192
            }
        }

        var size: Int {
            switch self {
            case .mutex: return RobustMutex.reservedSize
            case .consumerLine, .producerLine: return Line.size
            case .slots: return Coordinator.maximumServers * Slot.stride
            default: return MemoryLayout<UInt32>.size
            }
        }

        var kind: Kind { self == .mutex ? .pthreadObject : .words }
    }

    /// The record field holding the waiting line of `kind`.
    static func line(_ kind: QueueLineKind) -> Field {
        switch kind {
        case .consumers: return .consumerLine
        case .producers: return .producerLine
        }
    }

    /// One server slot's counts inside `Field.slots` (offsets from the slot's start;
    /// the slot of server s starts at `Field.slots.offset + s * Slot.stride`).
    ///
    /// | offset | size | field | content |
    /// |-------:|-----:|-------|---------|
    /// | 0      | 4    | `readHolds` | read holds of that server's threads |
    /// | 4      | 4    | `tickets` | that server's threads waiting with a ticket |
    /// | 8      | 4    | `blocked` | that server's phase-fair readers blocked behind a writer |
    /// | 12     | 4    | — | unused (zero) |
    enum Slot: CaseIterable, Sendable {
        case readHolds, tickets, blocked

        static let stride = 16

        var offset: Int {
            switch self {
            case .readHolds: return 0
            case .tickets: return 4
            case .blocked: return 8
            }
        }

        var size: Int { MemoryLayout<UInt32>.size }
    }

    /// One waiting line of `QueueWaiters` inside `Field.consumerLine` or
    /// `Field.producerLine` (offsets from the line's start).
    ///
    /// | offset | size | field | content |
    /// |-------:|-----:|-------|---------|
    /// | 0      | 4    | `next` | the next ticket to hand out |
    /// | 4      | 4    | `serving` | the ticket at the head of the line (futex word non-heads sleep on) |
    /// | 8      | 4    | `members` | bit s set while server slot s may have threads in this line |
    /// | 12     | 4    | `claim` | ticket + 1 of the head that announced itself (live heads do at once); 0 = none |
    /// | 16     | 12   | `departed` | 96 bits (`departedWindow`), bit `t % 96` set when ticket t left before its turn |
    enum Line: CaseIterable, Sendable {
        case next, serving, members, claim, departed

        static let size = 28
        /// Tickets the `departed` bits cover.
        static let departedWindow = 96

        var offset: Int {
            switch self {
            case .next: return 0
            case .serving: return 4
            case .members: return 8
            case .claim: return 12
            case .departed: return 16
            }
        }

        var size: Int {
            switch self {
            case .departed: return Line.departedWindow / 8
            default: return MemoryLayout<UInt32>.size
            }
        }
    }
}
