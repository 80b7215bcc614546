import DIPCCore
import Glibc
import Synchronization

/// The conformance suite of `BlockBackend`: every backend must pass it.
///
/// `verify(_:)` runs each `Check` on fresh stores of the factory's backend (names
/// made unique with the pid and a counter), cleans every store up afterwards, and
/// throws a `ConformanceFailure` naming the first violated clause. It needs no test
/// framework, like swift-nio's `ByteToMessageDecoderVerifier`:
///
///     try BackendConformance.verify(.inMemory)
///
/// `stress(_:)` adds the concurrent check (threads writing and reading checksummed
/// values through two `SharedStore`s).
public enum BackendConformance {
    /// One clause of the contract, checked on its own store(s).
    public enum Check: String, CaseIterable, Sendable {
        /// `open(create: true)` of a new store: `createdControl` is true, `geometry` is
        /// the one asked for, the whole control region (`StoreLayout.controlSize`) is
        /// zero, every mailbox has version 0 and reads as an empty value, `takeOldest`
        /// finds nothing and changes nothing.
        case create
        /// `open(create: false)` of a store that does not exist returns nil and creates nothing.
        case openMissing
        /// A second open of the same name (create true or false) attaches:
        /// `createdControl` is false, it sees the first opener's writes and control
        /// memory, and the first sees its writes.
        case attach
        /// `replace` makes the list exactly one message, returns version + 1 and reads
        /// back exactly; reads never change the version.
        case replace
        /// `append` adds a message exactly when `StoreLayout.fits` says so (returning
        /// version + 1), else returns nil and changes nothing; `readNewest` returns the
        /// last appended; `takeOldest` returns messages oldest first with version + 1
        /// each, nil and no change when empty; an emptied mailbox reads empty.
        case queue
        /// Mailbox 0 and the last one hold a value of exactly `mailboxSize` bytes and an
        /// empty value; a full-size message fits an empty list and then nothing more
        /// does; mailboxes are independent.
        case bounds
        /// `close(removing: false)` keeps the store (and its content) for later opens;
        /// `close(removing: true)` destroys its shared objects (`leftovers` is empty)
        /// and `open(create: false)` then finds nothing.
        case closeKeeps
        /// After `close(removing: true)` the next open creates a new store
        /// (`createdControl` true). Its content is empty and any geometry goes for
        /// shared memory; a persistent backend keeps content and versions, and refuses
        /// another geometry with `StoreError.geometryMismatch`.
        case remove
        /// Two `SharedStore.open`s of one name share mailboxes and server count; the
        /// first `detach` keeps the store (returns false), the last removes it
        /// (returns true, `leftovers` empty).
        case sharedStore
        /// `SharedStore.open` of an existing store with another geometry (more or fewer
        /// mailboxes, larger or smaller size) throws `StoreError.geometryMismatch`
        /// naming both geometries, and another coordinator policy throws
        /// `.coordinatorMismatch`; neither failure disturbs the open store.
        case mismatch
    }

    /// The geometry the checks use unless told otherwise: odd sizes on purpose.
    public static let defaultGeometry = StoreGeometry(mailboxes: 5, mailboxSize: 1000)

    private static let counter = Atomic<Int>(0)

    /// A store name unique to this process and call: `PREFIX-PID-N` (valid for `StoreName`).
    public static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(getpid())-\(counter.add(1, ordering: .relaxed).newValue)"
    }

    /// Runs `checks` (all by default) against `factory`'s backend and returns the names
    /// of the checks that passed. Throws the first `ConformanceFailure`. Every store it
    /// used is cleaned up with `factory.cleanup`, also on failure.
    @discardableResult
    public static func verify(
        _ factory: BackendFactory, checks: [Check] = Check.allCases, geometry: StoreGeometry = defaultGeometry
    ) throws -> [Check] {
        var passed: [Check] = []
        for check in checks {
            let run = Run(factory: factory, check: check, geometry: geometry)
            defer { run.cleanUp() }
            try run.perform()
            passed.append(check)
        }
        return passed
    }
}

/// One check on one backend: the stores it made and the helpers that phrase failures.
final class Run: ConformanceChecking {
    let factory: BackendFactory
    let check: BackendConformance.Check
    let g: StoreGeometry
    private var names: [String] = []

    init(factory: BackendFactory, check: BackendConformance.Check, geometry: StoreGeometry) {
        self.factory = factory
        self.check = check
        self.g = geometry
    }

    func perform() throws {
        switch check {
        case .create: try checkCreate()
        case .openMissing: try checkOpenMissing()
        case .attach: try checkAttach()
        case .replace: try checkReplace()
        case .queue: try checkQueue()
        case .bounds: try checkBounds()
        case .closeKeeps: try checkCloseKeeps()
        case .remove: try checkRemove()
        case .sharedStore: try checkSharedStore()
        case .mismatch: try checkMismatch()
        }
    }

    func cleanUp() {
        for name in names { factory.cleanup(name) }
    }

    // MARK: failures

    func fail(_ step: String, expected: String, got: String) -> ConformanceFailure {
        ConformanceFailure(backend: factory.name, check: "\(check.rawValue): \(step)", expected: expected, got: got)
    }


    // MARK: backend helpers

    /// A fresh store name, first cleaned of anything a crashed earlier run left.
    func freshName() -> String {
        let name = BackendConformance.uniqueName("conf-\(factory.name)")
        factory.cleanup(name)
        names.append(name)
        return name
    }

    func open(_ name: String, create: Bool, geometry: StoreGeometry? = nil, _ step: String) throws -> BlockBackend? {
        try attempt("\(step): open(\"\(name)\", create: \(create))") { try factory.open(name, geometry ?? g, create) }
    }

    func openExisting(_ name: String, create: Bool = true, _ step: String) throws -> BlockBackend {
        guard let backend = try open(name, create: create, step) else {
            throw fail("\(step): open(\"\(name)\", create: \(create))", expected: "a backend", got: "nil")
        }
        return backend
    }

    func read(_ b: BlockBackend, _ m: Int, _ step: String) throws -> ([UInt8], UInt64) {
        var buffer: [UInt8] = [0xEE, 0xEE, 0xEE]  // stale content that readNewest must replace
        let version = try attempt("\(step): readNewest(\(m))") { try b.readNewest(m, into: &buffer) }
        return (buffer, version)
    }

    func version(_ b: BlockBackend, _ m: Int, _ step: String) throws -> UInt64 {
        try attempt("\(step): version(of: \(m))") { try b.version(of: m) }
    }

    func replace(_ b: BlockBackend, _ m: Int, _ value: [UInt8], _ step: String) throws -> UInt64 {
        try attempt("\(step): replace(\(m), \(value.count) bytes)") {
            try value.withUnsafeBytes { try b.replace(m, with: $0) }
        }
    }

    func append(_ b: BlockBackend, _ m: Int, _ value: [UInt8], _ step: String) throws -> UInt64? {
        try attempt("\(step): append(\(m), \(value.count) bytes)") {
            try value.withUnsafeBytes { try b.append(m, $0) }
        }
    }

    func take(_ b: BlockBackend, _ m: Int, _ step: String) throws -> ([UInt8], UInt64)? {
        var buffer: [UInt8] = [0xEE]
        let version = try attempt("\(step): takeOldest(\(m))") { try b.takeOldest(m, into: &buffer) }
        return version.map { (buffer, $0) }
    }

    func queueState(_ b: BlockBackend, _ m: Int, _ step: String) throws -> QueueState {
        try attempt("\(step): queueState(\(m))") { try b.queueState(m) }
    }

    func close(_ b: BlockBackend, removing: Bool, _ step: String) throws {
        try attempt("\(step): close(removing: \(removing))") { try b.close(removing: removing) }
    }

    /// Expects the mailbox to read `value` at `version` (through both `readNewest` and `version(of:)`).
    func expectContent(_ b: BlockBackend, _ m: Int, _ value: [UInt8], _ version: UInt64, _ step: String) throws {
        let (data, v) = try read(b, m, step)
        try expectBytes(data, value, "\(step): readNewest(\(m)) data")
        try expect(v, version, "\(step): readNewest(\(m)) version")
        try expect(try self.version(b, m, step), version, "\(step): version(of: \(m))")
    }

    func expectNoLeftovers(_ name: String, _ step: String) throws {
        let left = factory.leftovers(name)
        if !left.isEmpty { throw fail("\(step): leftovers(\"\(name)\")", expected: "nothing", got: left.joined(separator: ", ")) }
    }

    func expectLeftovers(_ name: String, _ step: String) throws {
        if factory.leftovers(name).isEmpty {
            throw fail("\(step): leftovers(\"\(name)\")", expected: "the store's objects still present", got: "nothing")
        }
    }

    // MARK: the checks

    func checkCreate() throws {
        let name = freshName()
        let b = try openExisting(name, "new store")
        try expect(b.createdControl, true, "createdControl of the first open")
        try expect(b.geometry, g, "geometry of the new backend")
        let size = StoreLayout.controlSize(for: g)
        let control = UnsafeRawBufferPointer(start: b.control, count: size)
        if let index = control.firstIndex(where: { $0 != 0 }) {
            throw fail("control region of a created store", expected: "\(size) zero bytes",
                       got: "byte \(index) is \(control[index])")
        }
        for m in 0..<g.mailboxes {
            try expectContent(b, m, [], 0, "fresh mailbox \(m)")
            if let taken = try take(b, m, "fresh mailbox \(m)") {
                throw fail("takeOldest(\(m)) of a fresh mailbox", expected: "nil", got: "\(taken.0.count) bytes at version \(taken.1)")
            }
            try expect(try version(b, m, "after a failed take"), 0, "version(of: \(m)) after takeOldest found nothing")
        }
        try close(b, removing: true, "end")
        try expectNoLeftovers(name, "after close(removing: true)")
    }

    func checkOpenMissing() throws {
        let name = freshName()
        if let b = try open(name, create: false, "missing store") {
            try? b.close(removing: true)
            throw fail("open(create: false) of a store that does not exist", expected: "nil", got: "a backend")
        }
        try expectNoLeftovers(name, "after open(create: false) of a missing store")
    }

    func checkAttach() throws {
        let name = freshName()
        let first = try openExisting(name, "first opener")
        let one = pattern(37, seed: 1)
        try expect(try replace(first, 0, one, "first opener"), 1, "version after the first write")
        let second = try openExisting(name, create: true, "second opener")
        try expect(second.createdControl, false, "createdControl of a second open (create: true) of an existing store")
        try expect(second.geometry, g, "geometry of the second opener")
        try expectContent(second, 0, one, 1, "second opener sees the first's write")
        // Control memory is shared, not copied.
        let probe = StoreLayout.controlSize(for: g) - 8
        first.control.storeBytes(of: 0x0123_4567_89AB_CDEF as UInt64, toByteOffset: probe, as: UInt64.self)
        try expect(second.control.load(fromByteOffset: probe, as: UInt64.self), 0x0123_4567_89AB_CDEF,
                   "second opener's control sees a word the first stored")
        second.control.storeBytes(of: 0, toByteOffset: probe, as: UInt64.self)
        try expect(first.control.load(fromByteOffset: probe, as: UInt64.self), 0, "first opener's control sees the second's store")

        let third = try openExisting(name, create: false, "third opener (create: false)")
        try expect(third.createdControl, false, "createdControl of open(create: false) of an existing store")
        try expectContent(third, 0, one, 1, "third opener sees the first's write")

        let two = pattern(g.mailboxSize, seed: 2)
        try expect(try replace(second, 1, two, "second opener"), 1, "version after the second opener's write")
        try expectContent(first, 1, two, 1, "first opener sees the second's write")
        try expect(try append(third, 0, [7, 7, 7], "third opener") ?? 0, 2, "version after an append by the third opener")
        try expectContent(first, 0, [7, 7, 7], 2, "first opener sees the third's append")

        try close(third, removing: false, "third opener")
        try close(second, removing: false, "second opener")
        try expectLeftovers(name, "after two of three openers closed without removing")
        try expectContent(first, 1, two, 1, "first opener after the others closed")
        try close(first, removing: true, "first opener")
        try expectNoLeftovers(name, "after the last close(removing: true)")
    }

    func checkReplace() throws {
        let name = freshName()
        let b = try openExisting(name, "store")
        let m = g.mailboxes > 1 ? 1 : 0
        let lengths = [1, 0, 13, g.mailboxSize, g.mailboxSize - 1, 64]
        var version: UInt64 = 0
        for (i, length) in lengths.enumerated() {
            let value = pattern(length, seed: UInt64(10 + i))
            version += 1
            try expect(try replace(b, m, value, "write \(i + 1)"), version, "version returned by write \(i + 1) (\(length) bytes)")
            try expectContent(b, m, value, version, "after write \(i + 1) (\(length) bytes)")
            try expectContent(b, m, value, version, "a second read after write \(i + 1) (reads change nothing)")
        }
        // replace turns a list of several messages into exactly one.
        for k in 0..<3 {
            version += 1
            try expect(try append(b, m, pattern(5 + k, seed: UInt64(30 + k)), "queue \(k)"), version,
                       "version returned by append \(k + 1)")
        }
        let single = pattern(21, seed: 40)
        version += 1
        try expect(try replace(b, m, single, "replace a list of 4"), version, "version of replace over a list")
        try expectContent(b, m, single, version, "after replacing a list")
        version += 1
        guard let (taken, takenVersion) = try take(b, m, "after replace") else {
            throw fail("takeOldest after replace", expected: "the replaced message", got: "nil")
        }
        try expectBytes(taken, single, "takeOldest after replace returns the one message")
        try expect(takenVersion, version, "version returned by takeOldest")
        if let extra = try take(b, m, "second take after replace") {
            throw fail("takeOldest after taking the one message replace left", expected: "nil",
                       got: "\(extra.0.count) bytes (replace left more than one message)")
        }
        try expectContent(b, m, [], version, "emptied mailbox")
        try close(b, removing: true, "end")
        try expectNoLeftovers(name, "after close(removing: true)")
    }

    func checkQueue() throws {
        let name = freshName()
        let b = try openExisting(name, "store")
        let m = 0
        let capacity = StoreLayout.slotCapacity(for: g)
        var version: UInt64 = 0
        var model: [[UInt8]] = []
        var used = 0
        // Varied lengths, including empty messages; a length that does not fit is
        // followed by shorter ones that may.
        let lengths = [37, 0, 1, 100, 7, 250, 64, 3]
        var attempt = 0
        while capacity - used >= StoreLayout.messageOverhead && attempt < 10_000 {
            let length = lengths[attempt % lengths.count]
            let value = pattern(length, seed: UInt64(1000 + attempt))
            let fits = StoreLayout.fits(used: used, adding: length, in: g)
            let step = "append \(attempt + 1) (\(length) bytes, list uses \(used) of \(capacity))"
            let got = try append(b, m, value, step)
            if fits {
                version += 1
                try expect(got, version, "\(step): StoreLayout.fits says it fits")
                model.append(value)
                used += StoreLayout.messageOverhead + length
            } else {
                if let got { throw fail("\(step): StoreLayout.fits says it does not fit", expected: "nil", got: "version \(got)") }
            }
            try expectContent(b, m, model.last ?? [], version, step)
            try expect(try queueState(b, m, step), QueueState(count: model.count, usedBytes: used), "\(step): queueState")
            attempt += 1
        }
        // Fill the last bytes exactly, then nothing fits, not even an empty message.
        if capacity - used >= StoreLayout.messageOverhead {
            let last = pattern(capacity - used - StoreLayout.messageOverhead, seed: 1)
            version += 1
            try expect(try append(b, m, last, "exact fill"), version, "append of exactly the remaining room")
            model.append(last)
            used = capacity
        }
        if let got = try append(b, m, [], "full list") {
            throw fail("append of an empty message to a full list", expected: "nil", got: "version \(got)")
        }
        try expectContent(b, m, model.last ?? [], version, "full list after a refused append")
        // Oldest first, version + 1 each; the newest stays readable until taken.
        for (i, expected) in model.enumerated() {
            let step = "take \(i + 1) of \(model.count)"
            guard let (data, v) = try take(b, m, step) else { throw fail(step, expected: "a message", got: "nil") }
            version += 1
            try expectBytes(data, expected, "\(step): oldest first")
            try expect(v, version, "\(step): version")
            try expectContent(b, m, i + 1 < model.count ? model.last! : [], version, "\(step): newest after the take")
            let left = model[(i + 1)...]
            try expect(try queueState(b, m, step),
                       QueueState(count: left.count, usedBytes: left.reduce(0) { $0 + StoreLayout.messageOverhead + $1.count }),
                       "\(step): queueState")
        }
        if let extra = try take(b, m, "empty queue") {
            throw fail("takeOldest of an emptied list", expected: "nil", got: "\(extra.0.count) bytes at version \(extra.1)")
        }
        try expectContent(b, m, [], version, "emptied list after a refused take")
        // Interleaved pushes and takes.
        let a = pattern(10, seed: 2), c = pattern(20, seed: 3), d = pattern(30, seed: 4)
        for (value, step) in [(a, "push a"), (c, "push c")] {
            version += 1
            try expect(try append(b, m, value, step), version, "\(step): version")
        }
        version += 1
        try expectBytes(try take(b, m, "take")?.0 ?? [], a, "interleaved: first take returns a")
        version += 1
        try expect(try append(b, m, d, "push d"), version, "push d: version")
        try expectBytes(try take(b, m, "take")?.0 ?? [], c, "interleaved: second take returns c")
        try expectBytes(try take(b, m, "take")?.0 ?? [], d, "interleaved: third take returns d")
        version += 2
        try expectContent(b, m, [], version, "after interleaved pushes and takes")
        try close(b, removing: true, "end")
        try expectNoLeftovers(name, "after close(removing: true)")
    }

    func checkBounds() throws {
        let name = freshName()
        let b = try openExisting(name, "store")
        let last = g.mailboxes - 1
        let full0 = pattern(g.mailboxSize, seed: 50), fullLast = pattern(g.mailboxSize, seed: 51)
        try expect(try replace(b, 0, full0, "mailbox 0"), 1, "version of a full-size write to mailbox 0")
        try expectContent(b, 0, full0, 1, "full-size value in mailbox 0")
        try expect(try replace(b, last, fullLast, "last mailbox"), 1, "version of a full-size write to mailbox \(last)")
        try expectContent(b, last, fullLast, 1, "full-size value in mailbox \(last)")
        try expectContent(b, 0, full0, 1, "mailbox 0 after a write to mailbox \(last) (independent)")
        for m in 1..<max(1, last) {
            try expectContent(b, m, [], 0, "untouched mailbox \(m) between written ones")
        }
        try expect(try replace(b, last, [], "last mailbox"), 2, "version of an empty write")
        try expectContent(b, last, [], 2, "empty value in mailbox \(last)")
        try expect(try replace(b, 0, [], "mailbox 0"), 2, "version of an empty write")
        try expectContent(b, 0, [], 2, "empty value in mailbox 0")
        // An empty value is a message: it is taken, and then the list is empty.
        guard let (empty, v3) = try take(b, 0, "take the empty value") else {
            throw fail("takeOldest after writing an empty value", expected: "an empty message", got: "nil")
        }
        try expect(empty.count, 0, "length of the taken empty value")
        try expect(v3, 3, "version after taking the empty value")
        // A full-size message fits an empty list, and then nothing more does.
        if let got = try append(b, last, fullLast, "last mailbox") {
            throw fail("append of a full-size message to a list holding an empty one (\(g.mailboxSize) + 16 bytes > room)",
                       expected: "nil", got: "version \(got)")
        }
        try expect(try take(b, last, "last mailbox")?.1, 3, "take the empty message of mailbox \(last)")
        try expect(try append(b, last, fullLast, "last mailbox"), 4, "append of a full-size message to an empty list")
        try expectContent(b, last, fullLast, 4, "full-size appended message")
        if let got = try append(b, last, [], "last mailbox full") {
            throw fail("append of an empty message after a full-size one", expected: "nil", got: "version \(got)")
        }
        try expectContent(b, 0, [], 3, "mailbox 0 after the last mailbox's queue changes")
        try close(b, removing: true, "end")
        try expectNoLeftovers(name, "after close(removing: true)")
    }

    func checkCloseKeeps() throws {
        let name = freshName()
        let a = try openExisting(name, "first opener")
        let value = pattern(99, seed: 60)
        _ = try replace(a, 2 % g.mailboxes, value, "first opener")
        try close(a, removing: false, "sole opener")
        try expectLeftovers(name, "after the sole opener closed without removing")
        let b = try openExisting(name, create: false, "reopen (create: false) after close(removing: false)")
        try expect(b.createdControl, false, "createdControl when reopening a kept store")
        try expectContent(b, 2 % g.mailboxes, value, 1, "content kept across close(removing: false)")
        try close(b, removing: true, "second opener")
        try expectNoLeftovers(name, "after close(removing: true)")
        if let c = try open(name, create: false, "after removal") {
            try? c.close(removing: true)
            throw fail("open(create: false) after close(removing: true)", expected: "nil", got: "a backend")
        }
        try expectNoLeftovers(name, "after open(create: false) of a removed store")
    }

    func checkRemove() throws {
        let name = freshName()
        let a = try openExisting(name, "first life")
        let value = pattern(123, seed: 70)
        _ = try replace(a, 0, value, "first life")
        _ = try replace(a, 0, value, "first life")
        try close(a, removing: true, "first life")
        try expectNoLeftovers(name, "after close(removing: true)")
        let b = try openExisting(name, "second life")
        try expect(b.createdControl, true, "createdControl of the open after a removal")
        if factory.persistent {
            try expectContent(b, 0, value, 2, "persistent content after removal and reopen")
            try close(b, removing: true, "second life")
            try expectNoLeftovers(name, "after close(removing: true)")
            // The data file holds the geometry: another one is refused, and nothing is left behind.
            let other = StoreGeometry(mailboxes: g.mailboxes + 1, mailboxSize: g.mailboxSize)
            do {
                let store = try SharedStore.open(name: name, geometry: other, policy: .fifo) {
                    guard let backend = try factory.open(name, other, true) else { throw StoreError.unavailable("nil") }
                    return backend
                }
                _ = try? store.detach()
                throw fail("SharedStore.open of a persistent store with \(other)", expected: "StoreError.geometryMismatch",
                           got: "success")
            } catch let error as StoreError {
                guard case .geometryMismatch = error else {
                    throw fail("SharedStore.open of a persistent store with \(other)", expected: "StoreError.geometryMismatch",
                               got: "\(error)")
                }
            } catch let failure as ConformanceFailure {
                throw failure
            } catch {
                throw fail("SharedStore.open of a persistent store with \(other)", expected: "StoreError.geometryMismatch",
                           got: "\(type(of: error)) \(error)")
            }
            try expectNoLeftovers(name, "after a refused geometry")
        } else {
            try expectContent(b, 0, [], 0, "new store after removal (content must not survive)")
            try close(b, removing: true, "second life")
            // The name is free for another geometry now.
            let other = StoreGeometry(mailboxes: g.mailboxes + 2, mailboxSize: g.mailboxSize * 2)
            guard let c = try open(name, create: true, geometry: other, "third life with \(other)") else {
                throw fail("open of a removed store's name with \(other)", expected: "a backend", got: "nil")
            }
            try expect(c.createdControl, true, "createdControl of the third life")
            try expect(c.geometry, other, "geometry of the third life")
            try expectContent(c, other.mailboxes - 1, [], 0, "third life's last mailbox")
            try close(c, removing: true, "third life")
            try expectNoLeftovers(name, "after the third life")
        }
    }

    func openStore(_ name: String, geometry: StoreGeometry? = nil, policy: CoordinatorPolicy = .fifo, _ step: String) throws -> SharedStore {
        let geometry = geometry ?? g
        let factory = self.factory
        return try SharedStore.open(name: name, geometry: geometry, policy: policy) {
            guard let backend = try factory.open(name, geometry, true) else {
                throw StoreError.unavailable("open(create: true) returned nil")
            }
            return backend
        }
    }

    func checkSharedStore() throws {
        let name = freshName()
        let s1 = try attempt("first SharedStore.open") { try openStore(name, "first server") }
        let s2 = try attempt("second SharedStore.open") { try openStore(name, "second server") }
        try expect(s1.backend.createdControl, true, "the first server created the store")
        try expect(s2.backend.createdControl, false, "the second server attached")
        if s1.slot == s2.slot { throw fail("server slots", expected: "two different slots", got: "both \(s1.slot)") }
        try expect(s1.liveServerCount, 2, "liveServerCount seen by the first server")
        try expect(s2.liveServerCount, 2, "liveServerCount seen by the second server")

        let value = pattern(g.mailboxSize, seed: 80)
        var buffer: [UInt8] = []
        try expect(try attempt("s1.write") { try value.withUnsafeBytes { try s1.write(0, $0) } }, 1, "version of s1.write")
        try expect(try attempt("s2.read") { try s2.read(0, into: &buffer) }, 1, "version s2 reads")
        try expectBytes(buffer, value, "s2 reads s1's write")
        let a = pattern(3, seed: 81), b = pattern(4, seed: 82)
        try expect(try attempt("s2.push") { try a.withUnsafeBytes { try s2.push(1, $0) } }, 1, "version of s2.push a")
        try expect(try attempt("s2.push") { try b.withUnsafeBytes { try s2.push(1, $0) } }, 2, "version of s2.push b")
        try expect(try attempt("s1.take") { try s1.take(1, into: &buffer) }, 3, "version of s1.take")
        try expectBytes(buffer, a, "s1 takes s2's oldest push")
        try expect(try attempt("s1.read") { try s1.read(1, into: &buffer) }, 3, "version s1 reads after its take")
        try expectBytes(buffer, b, "s1 reads the remaining message")

        try expect(try attempt("s1.detach") { try s1.detach() }, false, "detach of the first of two servers removes the store")
        try expectLeftovers(name, "after the first of two servers detached")
        try expect(s2.liveServerCount, 1, "liveServerCount after one server detached")
        try expect(try attempt("s2.read after s1 left") { try s2.read(0, into: &buffer) }, 1, "version s2 reads after s1 left")
        try expectBytes(buffer, value, "s2 still reads after s1 left")
        try expect(try attempt("s2.write after s1 left") { try value.withUnsafeBytes { try s2.write(0, $0) } }, 2,
                   "version of a write after s1 left")
        try expect(try attempt("s2.detach") { try s2.detach() }, true, "detach of the last server removes the store")
        try expectNoLeftovers(name, "after the last server detached")
    }

    func checkMismatch() throws {
        let name = freshName()
        let s1 = try attempt("SharedStore.open") { try openStore(name, "first server") }
        let value = pattern(17, seed: 90)
        _ = try attempt("s1.write") { try value.withUnsafeBytes { try s1.write(0, $0) } }
        let others = [
            StoreGeometry(mailboxes: g.mailboxes + 3, mailboxSize: g.mailboxSize),
            StoreGeometry(mailboxes: g.mailboxes, mailboxSize: g.mailboxSize + 4096),
            StoreGeometry(mailboxes: max(1, g.mailboxes - 1), mailboxSize: g.mailboxSize),
            StoreGeometry(mailboxes: g.mailboxes, mailboxSize: max(1, g.mailboxSize / 2)),
        ].filter { $0 != g }
        for other in others {
            let step = "SharedStore.open of a store of \(g) with \(other)"
            do {
                let s = try openStore(name, geometry: other, step)
                _ = try? s.detach()
                throw fail(step, expected: "StoreError.geometryMismatch", got: "success")
            } catch let error as StoreError {
                guard case let .geometryMismatch(errorName, existing, requested) = error else {
                    throw fail(step, expected: "StoreError.geometryMismatch", got: "\(error)")
                }
                try expect(errorName, name, "\(step): the name in the error")
                try expect(existing, g, "\(step): the existing geometry in the error")
                try expect(requested, other, "\(step): the requested geometry in the error")
            } catch let failure as ConformanceFailure {
                throw failure
            } catch {
                throw fail(step, expected: "StoreError.geometryMismatch", got: "\(type(of: error)) \(error)")
            }
            var buffer: [UInt8] = []
            try expect(try attempt("s1.read after a refused attach") { try s1.read(0, into: &buffer) }, 1,
                       "\(step): the open store's version afterwards")
            try expectBytes(buffer, value, "\(step): the open store's content afterwards")
            try expect(s1.liveServerCount, 1, "\(step): servers attached afterwards")
        }
        let step = "SharedStore.open of a fifo store with phase-fair"
        do {
            let s = try openStore(name, policy: .phaseFair, step)
            _ = try? s.detach()
            throw fail(step, expected: "StoreError.coordinatorMismatch", got: "success")
        } catch let error as StoreError {
            guard case .coordinatorMismatch = error else {
                throw fail(step, expected: "StoreError.coordinatorMismatch", got: "\(error)")
            }
        } catch let failure as ConformanceFailure {
            throw failure
        } catch {
            throw fail(step, expected: "StoreError.coordinatorMismatch", got: "\(type(of: error)) \(error)")
        }
        try expect(try attempt("s1.detach") { try s1.detach() }, true, "detach of the only server")
        try expectNoLeftovers(name, "after the only server detached")
    }
}

// MARK: values

/// `length` deterministic bytes that differ with `seed` (and from zero-filled memory).
func pattern(_ length: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 0xD1B5_4A32_D192_ED03
    return (0..<length).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return UInt8(truncatingIfNeeded: state >> 56) | 1
    }
}

/// A short description of bytes for failure messages: length and the first bytes in hex.
func describe(_ bytes: [UInt8]) -> String {
    let hex = bytes.prefix(12).map { String($0, radix: 16) }.joined(separator: " ")
    return "\(bytes.count) bytes [\(hex)\(bytes.count > 12 ? " …" : "")]"
}
