import DIPCCore
import Glibc
import Synchronization

extension BackendConformance {
    /// What a `stress` run did.
    public struct StressReport: Sendable, CustomStringConvertible {
        public var writes: Int
        public var reads: Int
        /// The final version of each mailbox (equal to the writes it received).
        public var finalVersions: [UInt64]
        public var description: String {
            "\(writes) writes, \(reads) reads, final versions \(finalVersions)"
        }
    }

    /// The concurrent check: `writers` threads write checksummed values of random
    /// length to random mailboxes of `mailboxes` while `readers` threads read them,
    /// through two `SharedStore`s attached to one store (as two servers would be),
    /// with the coordinator of `policy`. Throws a `ConformanceFailure` when
    ///
    /// - a reader sees a value that is not exactly one writer's complete value (torn,
    ///   mixed, truncated or with a wrong checksum), or an empty value at a version
    ///   other than 0;
    /// - the version of a mailbox, as one reader observes it, decreases, or stays the
    ///   same while the content changes;
    /// - the versions one writer gets back from one mailbox do not increase;
    /// - a mailbox's final version is not the number of writes it received.
    ///
    /// The store is detached (and so removed) at the end and `factory.cleanup` runs
    /// on its name whatever happens.
    @discardableResult
    public static func stress(
        _ factory: BackendFactory, policy: CoordinatorPolicy = .fifo,
        writers: Int = 4, readers: Int = 4, mailboxes: Int = 2,
        writesPerWriter: Int = 1500, mailboxSize: Int = 4096
    ) throws -> StressReport {
        precondition(mailboxSize >= StressValue.minimumLength, "mailboxSize must hold a checksummed value")
        let geometry = StoreGeometry(mailboxes: mailboxes, mailboxSize: mailboxSize)
        let name = uniqueName("stress-\(factory.name)")
        factory.cleanup(name)
        defer { factory.cleanup(name) }
        @Sendable func fail(_ check: String, expected: String, got: String) -> ConformanceFailure {
            ConformanceFailure(backend: factory.name, check: "stress (\(policy.rawValue)): \(check)", expected: expected, got: got)
        }
        func open() throws -> SharedStore {
            try SharedStore.open(name: name, geometry: geometry, policy: policy) {
                guard let backend = try factory.open(name, geometry, true) else {
                    throw StoreError.unavailable("open(create: true) returned nil")
                }
                return backend
            }
        }
        let stores = [try open(), try open()]
        var detached = false
        defer { if !detached { for store in stores { _ = try? store.detach() } } }

        let shared = StressShared(stores: stores, mailboxes: mailboxes, writers: writers)
        @Sendable func record(_ failure: ConformanceFailure) { shared.failures.withLock { $0.append(failure) } }

        TestThreads.run(writers + readers) { index in
            let store = shared.stores[index % 2]
            var random = SplitMix64(seed: UInt64(index) &* 0x1234_5678 &+ UInt64(getpid()))
            if index < writers {
                defer { shared.writersLeft.subtract(1, ordering: .sequentiallyConsistent) }
                var lastVersion = [UInt64](repeating: 0, count: mailboxes)
                for sequence in 0..<writesPerWriter {
                    if shared.hasFailed { return }
                    let mailbox = Int(random.next() % UInt64(mailboxes))
                    let length = StressValue.minimumLength
                        + Int(random.next() % UInt64(mailboxSize - StressValue.minimumLength + 1))
                    let value = StressValue.make(writer: index, sequence: sequence, length: length, random: &random)
                    do {
                        let version = try value.withUnsafeBytes { try store.write(mailbox, $0) }
                        shared.writesPerMailbox[mailbox].value.add(1, ordering: .relaxed)
                        if version <= lastVersion[mailbox] {
                            record(fail("writer \(index): versions of mailbox \(mailbox)",
                                        expected: "above \(lastVersion[mailbox])", got: "\(version)"))
                            return
                        }
                        lastVersion[mailbox] = version
                    } catch {
                        record(fail("writer \(index): write \(sequence) to mailbox \(mailbox)", expected: "no error", got: "\(error)"))
                        return
                    }
                }
            } else {
                var buffer: [UInt8] = []
                var lastVersion = [UInt64](repeating: 0, count: mailboxes)
                var lastSum = [UInt64](repeating: 0, count: mailboxes)
                var reads = 0
                defer { shared.readCount.add(reads, ordering: .relaxed) }
                // Read until every writer is done, then once more.
                var finalPass = false
                while !finalPass {
                    finalPass = shared.writersLeft.load(ordering: .sequentiallyConsistent) == 0
                    if shared.hasFailed { return }
                    for mailbox in 0..<mailboxes {
                        let version: UInt64
                        do {
                            version = try store.read(mailbox, into: &buffer)
                        } catch {
                            record(fail("reader \(index): read of mailbox \(mailbox)", expected: "no error", got: "\(error)"))
                            return
                        }
                        reads += 1
                        let sum: UInt64
                        if buffer.isEmpty {
                            guard version == 0 else {
                                record(fail("reader \(index): mailbox \(mailbox) at version \(version)",
                                            expected: "a written value", got: "an empty value"))
                                return
                            }
                            sum = 0
                        } else if let checked = StressValue.check(buffer) {
                            sum = checked
                        } else {
                            record(fail("reader \(index): mailbox \(mailbox) at version \(version)",
                                        expected: "one complete checksummed value", got: "a torn value: \(describe(buffer))"))
                            return
                        }
                        if version < lastVersion[mailbox] || (version == lastVersion[mailbox] && sum != lastSum[mailbox]) {
                            record(fail("reader \(index): versions of mailbox \(mailbox)",
                                        expected: "never below \(lastVersion[mailbox]) (and new content only with a new version)",
                                        got: "\(version)\(version == lastVersion[mailbox] ? " with different content" : "")"))
                            return
                        }
                        lastVersion[mailbox] = version
                        lastSum[mailbox] = sum
                    }
                }
            }
        }
        if let first = shared.failures.withLock({ $0.first }) { throw first }

        var finalVersions: [UInt64] = []
        var buffer: [UInt8] = []
        for mailbox in 0..<mailboxes {
            let written = UInt64(shared.writesPerMailbox[mailbox].value.load(ordering: .relaxed))
            let version = try stores[mailbox % 2].read(mailbox, into: &buffer)
            if version != written {
                throw fail("final version of mailbox \(mailbox)", expected: "\(written) (one per write)", got: "\(version)")
            }
            if written > 0, StressValue.check(buffer) == nil {
                throw fail("final value of mailbox \(mailbox)", expected: "one complete value", got: describe(buffer))
            }
            finalVersions.append(version)
        }
        detached = true
        let removed = try stores.map { try $0.detach() }
        if removed != [false, true] {
            throw fail("detach of the two stores", expected: "[false, true] (the last removes)", got: "\(removed)")
        }
        let left = factory.leftovers(name)
        if !left.isEmpty { throw fail("leftovers after the last detach", expected: "nothing", got: left.joined(separator: ", ")) }
        return StressReport(writes: writers * writesPerWriter, reads: shared.readCount.load(ordering: .relaxed),
                            finalVersions: finalVersions)
    }
}

/// State the stress threads share.
private final class StressShared: Sendable {
    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    let stores: [SharedStore]
    let failures = Mutex<[ConformanceFailure]>([])
    let writesPerMailbox: [Counter]
    let writersLeft: Atomic<Int>
    let readCount = Atomic<Int>(0)

    init(stores: [SharedStore], mailboxes: Int, writers: Int) {
        self.stores = stores
        self.writesPerMailbox = (0..<mailboxes).map { _ in Counter() }
        self.writersLeft = Atomic<Int>(writers)
    }

    var hasFailed: Bool { failures.withLock { !$0.isEmpty } }
}

/// A value that proves its own integrity: `[writer u32][sequence u32][length u64]`,
/// random payload, then FNV-1a 64 of everything before it.
enum StressValue {
    static let minimumLength = 24

    static func make(writer: Int, sequence: Int, length: Int, random: inout SplitMix64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: length)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(truncatingIfNeeded: writer).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(truncatingIfNeeded: sequence).littleEndian, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt64(length).littleEndian, toByteOffset: 8, as: UInt64.self)
            var offset = 16
            // Plain loops: in a debug build, `stride` looks up tuple metadata on every step,
            // under a runtime lock that 64 stress threads turn into a convoy (make tsan).
            while offset < length - 8 {
                var word = random.next()
                var byte = 0
                while byte < 8 && offset < length - 8 {
                    raw[offset] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    byte += 1
                    offset += 1
                }
            }
            let sum = fnv1a(UnsafeRawBufferPointer(rebasing: raw[0..<(length - 8)]))
            raw.storeBytes(of: sum.littleEndian, toByteOffset: length - 8, as: UInt64.self)
        }
        return bytes
    }

    /// The checksum when `bytes` is one intact value, else nil.
    static func check(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= minimumLength else { return nil }
        return bytes.withUnsafeBytes { raw -> UInt64? in
            let length = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            guard length == UInt64(bytes.count) else { return nil }
            let sum = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
            return fnv1a(UnsafeRawBufferPointer(rebasing: raw[0..<(bytes.count - 8)])) == sum ? sum : nil
        }
    }

    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        return hash
    }
}
