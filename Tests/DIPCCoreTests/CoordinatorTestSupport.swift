import Glibc
import Synchronization
import Testing

@testable import DIPCCore

/// Shared memory for coordinator tests: anonymous (in-process tests) or a POSIX shm
/// object that a probe process can open (unlinked when the region goes away).
final class CoordinatorTestRegion: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    let size: Int
    let mailboxes: Int
    /// The POSIX shm name, when shared by name.
    let shmName: String?

    private static let counter = Atomic<Int>(0)

    /// `extraBytes` follow the coordinator region (test counters).
    init(mailboxes: Int, named: Bool = false, extraBytes: Int = 0) throws {
        self.mailboxes = mailboxes
        size = Coordinator.regionSize(mailboxes: mailboxes) + extraBytes
        if named {
            let name = "/dipc-coordtest-\(getpid())-\(Self.counter.add(1, ordering: .relaxed).newValue)"
            let fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw SystemError.last("shm_open") }
            defer { close(fd) }
            guard ftruncate(fd, off_t(size)) == 0 else {
                let error = SystemError.last("ftruncate")
                shm_unlink(name)
                throw error
            }
            guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
                let error = SystemError.last("mmap")
                shm_unlink(name)
                throw error
            }
            pointer = p
            shmName = name
        } else {
            guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
            else { throw SystemError.last("mmap") }
            pointer = p
            shmName = nil
        }
        do {
            try Coordinator.initializeRegion(pointer, mailboxes: mailboxes)
        } catch {
            munmap(pointer, size)
            if let shmName { shm_unlink(shmName) }
            throw error
        }
    }

    /// The bytes after the coordinator region.
    var extra: UnsafeMutableRawPointer { pointer + Coordinator.regionSize(mailboxes: mailboxes) }

    deinit {
        munmap(pointer, size)
        if let shmName { shm_unlink(shmName) }
    }

    func coordinator(
        policy: CoordinatorPolicy, slot: Int = 0, isSlotAlive: @escaping @Sendable (Int) -> Bool = { _ in true }
    ) -> Coordinator {
        Coordinator(region: pointer, mailboxes: mailboxes, policy: policy, slot: slot, isSlotAlive: isSlotAlive)
    }
}

/// A pthread running a closure (tests must not block the cooperative pool).
final class TestThread: @unchecked Sendable {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private var thread = pthread_t()
    private let finished: Flag
    private var joined = false

    init(_ body: @escaping @Sendable () -> Void) {
        let finished = Flag()
        self.finished = finished
        let box = Unmanaged.passRetained(
            Box {
                body()
                finished.value.store(true, ordering: .releasing)
            }
        ).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { raw in
                Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    var isFinished: Bool { finished.value.load(ordering: .acquiring) }

    /// Joins the thread if it finishes before the deadline; false if it is still running.
    @discardableResult
    func join(within seconds: Double = 10) -> Bool {
        if joined { return true }
        guard waitUntil(seconds, { self.isFinished }) else { return false }
        pthread_join(thread, nil)
        joined = true
        return true
    }
}

/// Polls `condition` until it holds or `seconds` pass; returns whether it held.
@discardableResult
func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + Int64(seconds * 1e9)
    while true {
        if condition() { return true }
        if monotonicNanoseconds() >= deadline { return false }
        usleep(200)
    }
}

/// A spinning pause of roughly `microseconds`, without sleeping.
func busyPause(microseconds: Int) {
    let end = monotonicNanoseconds() + Int64(microseconds) * 1000
    while monotonicNanoseconds() < end {}
}

/// An ordered log of events from several threads.
final class EventLog: Sendable {
    private let events = Mutex<[String]>([])
    func append(_ event: String) { events.withLock { $0.append(event) } }
    var all: [String] { events.withLock { $0 } }
}

/// The `dipc-lockprobe` executable in another process, talking over pipes.
final class LockProbe: @unchecked Sendable {
    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var buffer: [UInt8] = []
    private let reaped = Atomic<Bool>(false)

    /// `dipc-lockprobe` lives next to the test bundle in the build products directory.
    static var executablePath: String {
        var bytes = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &bytes, bytes.count - 1)
        let exe = n > 0 ? String(decoding: bytes[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var dir = exe
        // Walk up until a directory holding the probe (the bundle may be a directory elsewhere).
        while let slash = dir.lastIndex(of: "/"), slash != dir.startIndex {
            dir = String(dir[..<slash])
            let candidate = dir + "/dipc-lockprobe"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return "dipc-lockprobe"
    }

    init(region: CoordinatorTestRegion, policy: CoordinatorPolicy, slot: Int, mailbox: Int, mode: String) throws {
        var toChild: [Int32] = [0, 0]
        var fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0 else { throw SystemError.last("pipe") }
        guard pipe(&fromChild) == 0 else { throw SystemError.last("pipe") }
        for fd in toChild + fromChild { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        let arguments = [
            Self.executablePath, region.shmName ?? "", "\(region.mailboxes)", policy.rawValue, "\(slot)",
            "\(mailbox)", mode, "\(getpid())",
        ]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, arguments[0], &actions, nil, &argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SystemError("posix_spawn \(arguments[0])", errno: rc)
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
    }

    deinit {
        if !isReaped { kill(pid, SIGKILL); reap() }
        close(input)
        close(output)
    }

    /// The next stdout line, or nil on EOF or when `seconds` pass.
    func readLine(within seconds: Double = 10) -> String? {
        let deadline = monotonicNanoseconds() + Int64(seconds * 1e9)
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            let left = deadline - monotonicNanoseconds()
            if left <= 0 { return nil }
            var pfd = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(left / 1_000_000 + 1, 1000)))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 256)
            let n = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }

    /// Tells the probe to release its lock.
    func proceed() {
        _ = "go\n".withCString { write(input, $0, 3) }
    }

    /// Whether the probe has been killed (or exited) and reaped.
    var isReaped: Bool { reaped.load(ordering: .acquiring) }

    func killHard() {
        kill(pid, SIGKILL)
        reap()
    }

    /// Waits for the probe to exit; returns its exit status (or -signal).
    @discardableResult
    func reap() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped.store(true, ordering: .releasing)
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return -(status & 0x7f)
    }
}

/// A sequentially consistent integer shared by test threads.
final class TestCounter: Sendable {
    private let storage: Atomic<Int>
    init(_ value: Int = 0) { storage = Atomic(value) }
    var value: Int { storage.load(ordering: .sequentiallyConsistent) }
    /// Adds `delta` and returns the new value.
    @discardableResult
    func add(_ delta: Int = 1) -> Int { storage.add(delta, ordering: .sequentiallyConsistent).newValue }
    func store(_ value: Int) { storage.store(value, ordering: .sequentiallyConsistent) }
}

/// A boolean shared by test threads.
final class TestFlag: Sendable {
    private let storage = Atomic<Bool>(false)
    var isSet: Bool { storage.load(ordering: .sequentiallyConsistent) }
    func set() { storage.store(true, ordering: .sequentiallyConsistent) }
}
