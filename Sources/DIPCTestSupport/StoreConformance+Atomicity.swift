import DIPCCore
import Glibc
import Synchronization

/// The atomicity clause: writers and readers on two handles at once.
extension StoreRun {
    static let atomicityWriters = 2
    static let atomicityReaders = 2

    /// Writers write `CheckedValue`s of varying length to two mailboxes through both
    /// handles for `atomicitySeconds`, while readers read both mailboxes through both
    /// handles until the writers are done, then once more.
    func checkAtomicity() throws {
        let name = freshName()
        let stores = [try open(name, "server A"), try open(name, "server B")]
        let mailboxes = min(g.mailboxes, 2)
        let writers = Self.atomicityWriters
        let shared = AtomicityShared(mailboxes: mailboxes, writers: writers)
        let c = clause, g = self.g
        let end = monotonicSeconds() + atomicitySeconds

        TestThreads.run(writers + Self.atomicityReaders) { index in
            let store = stores[index % 2]
            if index < writers {
                defer { shared.writersLeft.subtract(1, ordering: .sequentiallyConsistent) }
                var random = SplitMix64(seed: UInt64(index + 1) &* 0x9E37_79B9 &+ UInt64(getpid()))
                var lastVersion = [UInt64](repeating: 0, count: mailboxes)
                var sequence: UInt64 = 0
                while monotonicSeconds() < end, !shared.hasFailed {
                    let mailbox = Int(random.next() % UInt64(mailboxes))
                    let value = CheckedValue.make(seed: UInt64(index + 1) << 40 | sequence, maximumLength: g.mailboxSize)
                    sequence += 1
                    do {
                        let version = try c.write(store, mailbox, value, "writer \(index + 1)")
                        shared.writes[mailbox].add(1)
                        if version <= lastVersion[mailbox] {
                            shared.record(c.fail("writer \(index + 1): versions its writes to mailbox \(mailbox) returned",
                                                 expected: "above \(lastVersion[mailbox])", got: "\(version)"))
                            return
                        }
                        lastVersion[mailbox] = version
                        shared.completed[mailbox].raise(to: version)
                    } catch let failure as ConformanceFailure {
                        shared.record(failure)
                        return
                    } catch {
                        shared.record(c.fail("writer \(index + 1)", expected: "no error", got: "\(error)"))
                        return
                    }
                }
            } else {
                let reader = index - writers + 1
                var lastVersion = [UInt64](repeating: 0, count: mailboxes)
                var lastSeed = [UInt64?](repeating: nil, count: mailboxes)
                var finalPass = false
                while !finalPass, !shared.hasFailed {
                    finalPass = shared.writersLeft.load(ordering: .sequentiallyConsistent) == 0
                    for mailbox in 0..<mailboxes {
                        let floor = shared.completed[mailbox].value
                        let data: [UInt8], version: UInt64
                        do {
                            (data, version) = try c.read(store, mailbox, "reader \(reader)")
                        } catch {
                            shared.record(error as? ConformanceFailure
                                ?? c.fail("reader \(reader)", expected: "no error", got: "\(error)"))
                            return
                        }
                        shared.reads.add(1)
                        let step = "reader \(reader): mailbox \(mailbox) at version \(version)"
                        let seed: UInt64?
                        if data.isEmpty {
                            guard version == 0 else {
                                shared.record(c.fail(step, expected: "a written value", got: "an empty value"))
                                return
                            }
                            seed = nil
                        } else if let checked = CheckedValue.seed(of: data, maximumLength: g.mailboxSize) {
                            seed = checked
                        } else {
                            shared.record(c.fail(step, expected: "one writer's whole value", got: "a torn value: \(describe(data))"))
                            return
                        }
                        if version < floor {
                            shared.record(c.fail(step, expected: "at least version \(floor) (a write that completed before the read began)",
                                                 got: "version \(version)"))
                            return
                        }
                        if version < lastVersion[mailbox] || (version == lastVersion[mailbox] && seed != lastSeed[mailbox]) {
                            shared.record(c.fail("reader \(reader): versions of mailbox \(mailbox)",
                                                 expected: "never below \(lastVersion[mailbox]), new content only with a new version",
                                                 got: "\(version)\(version == lastVersion[mailbox] ? " with other content" : "")"))
                            return
                        }
                        lastVersion[mailbox] = version
                        lastSeed[mailbox] = seed
                    }
                }
            }
        }
        if let failure = shared.firstFailure { throw failure }

        for mailbox in 0..<mailboxes {
            let written = UInt64(shared.writes[mailbox].value)
            let (data, version) = try c.read(stores[mailbox % 2], mailbox, "after the run")
            try c.expect(version, written, "final version of mailbox \(mailbox) (one per write)")
            if written > 0, CheckedValue.seed(of: data, maximumLength: g.mailboxSize) == nil {
                throw c.fail("final value of mailbox \(mailbox)", expected: "one writer's whole value", got: describe(data))
            }
        }
        if shared.writes.allSatisfy({ $0.value == 0 }) || shared.reads.value == 0 {
            throw c.fail("the run", expected: "writes and reads", got: "\(shared.writes.map(\.value)) writes, \(shared.reads.value) reads")
        }
    }
}

/// State the atomicity threads share.
private final class AtomicityShared: Sendable {
    final class Counter: Sendable {
        private let atomic = Atomic<Int>(0)
        func add(_ n: Int) { atomic.add(n, ordering: .relaxed) }
        var value: Int { atomic.load(ordering: .relaxed) }
    }

    /// The highest version a completed write of a mailbox returned.
    final class Highest: Sendable {
        private let atomic = Atomic<UInt64>(0)
        var value: UInt64 { atomic.load(ordering: .sequentiallyConsistent) }
        func raise(to version: UInt64) {
            var current = atomic.load(ordering: .sequentiallyConsistent)
            while current < version {
                let (exchanged, original) = atomic.compareExchange(expected: current, desired: version, ordering: .sequentiallyConsistent)
                if exchanged { return }
                current = original
            }
        }
    }

    let writes: [Counter]
    let completed: [Highest]
    let reads = Counter()
    let writersLeft: Atomic<Int>
    private let failures = Mutex<[ConformanceFailure]>([])

    init(mailboxes: Int, writers: Int) {
        writes = (0..<mailboxes).map { _ in Counter() }
        completed = (0..<mailboxes).map { _ in Highest() }
        writersLeft = Atomic<Int>(writers)
    }

    func record(_ failure: ConformanceFailure) { failures.withLock { $0.append(failure) } }
    var hasFailed: Bool { failures.withLock { !$0.isEmpty } }
    var firstFailure: ConformanceFailure? { failures.withLock { $0.first } }
}

/// A value whose every byte follows from the seed in its first 8 bytes: its length
/// (8 up to a maximum) and its payload, so that any mix of two values, truncation or
/// stale byte shows.
enum CheckedValue {
    static let minimumLength = 8

    /// The value of `seed`: a length from `minimumLength` to `maximumLength` chosen by
    /// the seed, then payload bytes drawn from it.
    static func make(seed: UInt64, maximumLength: Int) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        let length = draw(&random, maximumLength: maximumLength)
        var value = [UInt8](repeating: 0, count: length)
        withUnsafeBytes(of: seed.littleEndian) { for i in 0..<8 { value[i] = $0[i] } }
        var index = 8
        while index < length {
            var word = random.next()
            var byte = 0
            while byte < 8 && index < length {
                value[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                byte += 1
                index += 1
            }
        }
        return value
    }

    /// The seed when `data` is exactly the value `make(seed:maximumLength:)` made for
    /// the seed in its first bytes, else nil.
    static func seed(of data: [UInt8], maximumLength: Int) -> UInt64? {
        guard data.count >= minimumLength else { return nil }
        let seed = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        var random = SplitMix64(seed: seed)
        guard draw(&random, maximumLength: maximumLength) == data.count else { return nil }
        return make(seed: seed, maximumLength: maximumLength) == data ? seed : nil
    }

    private static func draw(_ random: inout SplitMix64, maximumLength: Int) -> Int {
        minimumLength + Int(random.next() % UInt64(maximumLength - minimumLength + 1))
    }
}
