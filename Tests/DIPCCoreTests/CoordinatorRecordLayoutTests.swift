import Glibc
import Testing

@testable import DIPCCore

/// `CoordinatorRecordLayout`, the one table of the coordinator record shared by
/// `CoordinatorRecord` and `QueueWaiters`: the byte layout is a store format (shared
/// between processes, persisted in tdb coordinator maps), so it is pinned value by
/// value, and the table itself is checked for overlaps, alignment and fit.
@Suite("coordinator record layout")
struct CoordinatorRecordLayoutTests {
    typealias Layout = CoordinatorRecordLayout

    /// One table entry as a byte range, for the generic checks.
    struct Entry: CustomStringConvertible {
        let name: String
        let offset: Int
        let size: Int
        let alignment: Int
        var end: Int { offset + size }
        var description: String { "\(name) [\(offset)..<\(end)]" }
    }

    static var recordEntries: [Entry] {
        Layout.Field.allCases.map { Entry(name: "\($0)", offset: $0.offset, size: $0.size, alignment: $0.kind.alignment) }
    }

    static var slotEntries: [Entry] {
        Layout.Slot.allCases.map { Entry(name: "slot.\($0)", offset: $0.offset, size: $0.size, alignment: MemoryLayout<UInt32>.alignment) }
    }

    static var lineEntries: [Entry] {
        Layout.Line.allCases.map { Entry(name: "line.\($0)", offset: $0.offset, size: $0.size, alignment: MemoryLayout<UInt32>.alignment) }
    }

    /// The three tables with the size each must fit in.
    static var tables: [(name: String, size: Int, entries: [Entry])] {
        [("record", Layout.size, recordEntries), ("slot", Layout.Slot.stride, slotEntries), ("line", Layout.Line.size, lineEntries)]
    }

    @Test("the layout is byte for byte the store format it was before the table (offset, size)")
    func pinnedFormat() {
        // The values the code used before the table existed: CoordinatorRecord's and
        // WaiterLine's constants. A change here is a store format change.
        let record: [Layout.Field: (Int, Int)] = [
            .mutex: (0, 64), .wake: (64, 4), .epoch: (68, 4), .next: (72, 4), .serving: (76, 4),
            .writer: (80, 4), .activeReaders: (84, 4), .ticketHolders: (88, 4), .blockedReaders: (92, 4),
            .phase: (96, 4), .change: (128, 4), .changeWatchers: (132, 4),
            .consumerLine: (136, 28), .producerLine: (164, 28), .slots: (192, 512),
        ]
        #expect(Layout.size == 704)
        #expect(record.count == Layout.Field.allCases.count, "a field was added: pin it here")
        for field in Layout.Field.allCases {
            #expect(record[field].map { [$0.0, $0.1] } == [field.offset, field.size], "\(field)")
        }
        let slot: [Layout.Slot: Int] = [.readHolds: 0, .tickets: 4, .blocked: 8]
        #expect(Layout.Slot.stride == 16)
        #expect(slot.count == Layout.Slot.allCases.count, "a slot field was added: pin it here")
        for field in Layout.Slot.allCases {
            #expect(slot[field] == field.offset && field.size == 4, "slot.\(field)")
        }
        let line: [Layout.Line: (Int, Int)] = [.next: (0, 4), .serving: (4, 4), .members: (8, 4), .claim: (12, 4), .departed: (16, 12)]
        #expect(Layout.Line.size == 28 && Layout.Line.departedWindow == 96)
        #expect(line.count == Layout.Line.allCases.count, "a line field was added: pin it here")
        for field in Layout.Line.allCases {
            #expect(line[field].map { [$0.0, $0.1] } == [field.offset, field.size], "line.\(field)")
        }
    }

    @Test("the coordinator and the waiting lines take their offsets from the table")
    func usersFollowTheTable() throws {
        #expect(CoordinatorRecord.stride == Layout.size)
        #expect(Coordinator.regionSize(mailboxes: 3) == 3 * Layout.size)
        let aliases: [(Int, Layout.Field)] = [
            (CoordinatorRecord.mutexOffset, .mutex), (CoordinatorRecord.wakeOffset, .wake),
            (CoordinatorRecord.epochOffset, .epoch), (CoordinatorRecord.nextOffset, .next),
            (CoordinatorRecord.servingOffset, .serving), (CoordinatorRecord.writerOffset, .writer),
            (CoordinatorRecord.activeReadersOffset, .activeReaders), (CoordinatorRecord.ticketHoldersOffset, .ticketHolders),
            (CoordinatorRecord.blockedReadersOffset, .blockedReaders), (CoordinatorRecord.phaseOffset, .phase),
            (CoordinatorRecord.changeOffset, .change), (CoordinatorRecord.changeWatchersOffset, .changeWatchers),
            (CoordinatorRecord.slotsOffset, .slots),
        ]
        for (alias, field) in aliases {
            #expect(alias == field.offset, "CoordinatorRecord's offset of \(field)")
        }
        #expect(CoordinatorRecord.slotStride == Layout.Slot.stride)
        #expect([CoordinatorRecord.slotReadHolds, CoordinatorRecord.slotTickets, CoordinatorRecord.slotBlocked]
            == [Layout.Slot.readHolds.offset, Layout.Slot.tickets.offset, Layout.Slot.blocked.offset])
        #expect(WaiterLine.window == UInt32(Layout.Line.departedWindow))

        let region = try CoordinatorTestRegion(mailboxes: 2)
        let record = region.coordinator(policy: .fifo).record(1)
        for kind in [QueueLineKind.consumers, .producers] {
            let line = WaiterLine(record, kind)
            #expect(line.base - record.base == Layout.line(kind).offset, "\(kind) line")
            #expect(UnsafeMutableRawPointer(line.servingPointer) - record.base
                == Layout.line(kind).offset + Layout.Line.serving.offset, "\(kind) line's serving word")
        }
        #expect(Layout.line(.consumers) == .consumerLine && Layout.line(.producers) == .producerLine)
        #expect(UnsafeMutableRawPointer(record.wakePointer) - record.base == Layout.Field.wake.offset)
        #expect(UnsafeMutableRawPointer(record.changePointer) - record.base == Layout.Field.change.offset)
    }

    @Test("no two fields overlap")
    func noOverlap() {
        for table in Self.tables {
            let sorted = table.entries.sorted { $0.offset < $1.offset }
            for (earlier, later) in zip(sorted, sorted.dropFirst()) {
                #expect(earlier.end <= later.offset, "\(table.name): \(earlier) overlaps \(later)")
            }
        }
    }

    @Test("every field is naturally aligned, and so is every slot and line")
    func naturalAlignment() {
        for table in Self.tables {
            for entry in table.entries {
                #expect(entry.size > 0, "\(table.name): \(entry) is empty")
                #expect(entry.offset % entry.alignment == 0, "\(table.name): \(entry) is not \(entry.alignment)-byte aligned")
            }
        }
        // Slots and lines repeat inside the record: their strides keep words aligned.
        #expect(Layout.Slot.stride % MemoryLayout<UInt32>.alignment == 0)
        #expect(Layout.Line.size % MemoryLayout<UInt32>.alignment == 0)
        #expect(Layout.Line.departed.size % MemoryLayout<UInt32>.size == 0, "departed is whole words")
    }

    @Test("pthread objects sit at 64-byte-aligned offsets, in every record of the region")
    func pthreadObjectsOn64Bytes() {
        let pthreadFields = Layout.Field.allCases.filter { $0.kind == .pthreadObject }
        #expect(pthreadFields == [.mutex])
        for field in pthreadFields {
            #expect(field.offset % 64 == 0, "\(field)")
            #expect(field.size >= MemoryLayout<pthread_mutex_t>.size, "\(field) too small for pthread_mutex_t")
        }
        #expect(Layout.size % 64 == 0, "records follow each other: the stride keeps each mutex 64-byte aligned")
    }

    @Test("every field fits in its record, slot or line")
    func fieldsFit() {
        for table in Self.tables {
            for entry in table.entries {
                #expect(entry.offset >= 0 && entry.end <= table.size, "\(table.name): \(entry) ends past \(table.size)")
            }
        }
        #expect(Layout.Field.slots.size == Coordinator.maximumServers * Layout.Slot.stride)
        #expect(Layout.Field.consumerLine.size == Layout.Line.size && Layout.Field.producerLine.size == Layout.Line.size)
        #expect(Layout.Line.departed.size * 8 == Layout.Line.departedWindow, "one departed bit per ticket of the window")
        #expect(Coordinator.maximumServers <= 32, "a line's members word has one bit per server slot")
    }
}
