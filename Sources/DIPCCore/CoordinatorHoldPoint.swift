import Atomics
import Glibc

/// Test-only hold points, so that crash tests can SIGKILL a real server at an exact
/// moment instead of hoping to hit it. Compiled into DEBUG builds only: in release
/// builds `reach` is empty and the environment is never read.
///
/// `DIPC_TEST_HOLD=POINT:MAILBOX:PATH` arms one point for one mailbox. The first
/// thread of the process that reaches POINT on MAILBOX creates the file PATH (its
/// announcement: tests wait for the file, never for a time), then pauses until PATH
/// is removed, then carries on. Every other thread, mailbox and later pass runs
/// normally. A malformed value is ignored.
public enum HoldPoint: String, Sendable {
    /// Holding the read lock, before the body runs.
    case readLock = "read-lock"
    /// Holding the write lock, before the body runs.
    case writeLock = "write-lock"
    /// Queued for a lock (ticket taken or blocked), mutex released, about to sleep.
    case waiting
    /// In the middle of a change, before it is published (mapped backends: half of a
    /// replacing write's data copied into the spare slot; tdb: any change stored in
    /// its still uncommitted transaction).
    case midCopy = "mid-copy"

    /// The environment variable that arms a hold point.
    public static let environmentVariable = "DIPC_TEST_HOLD"
}

/// The hold point armed for this process, captured once by each component that has
/// hold points (at its init), so that the lock paths test a stored property only.
public struct HoldPoints: Sendable {
    #if DEBUG
        let armed: ArmedHoldPoint?
    #endif

    /// What `DIPC_TEST_HOLD` arms (nothing in release builds).
    public init() {
        #if DEBUG
            armed = ArmedHoldPoint.fromEnvironment
        #endif
    }

    /// Pauses here if `point` is armed for `mailbox` and nobody paused at it yet.
    @inline(__always)
    public func reach(_ point: HoldPoint, mailbox: Int) {
        #if DEBUG
            guard let armed, armed.point == point, armed.mailbox == mailbox else { return }
            armed.pause()
        #endif
    }
}

#if DEBUG
    /// The hold point the environment arms, if any (read once).
    final class ArmedHoldPoint: Sendable {
        let point: HoldPoint
        let mailbox: Int
        let path: String
        private let used = ManagedAtomic<Bool>(false)

        static let fromEnvironment: ArmedHoldPoint? = {
            guard let raw = getenv(HoldPoint.environmentVariable) else { return nil }
            let fields = String(cString: raw).split(separator: ":", maxSplits: 2).map(String.init)
            guard fields.count == 3, let point = HoldPoint(rawValue: fields[0]), let mailbox = Int(fields[1]),
                !fields[2].isEmpty
            else { return nil }
            return ArmedHoldPoint(point: point, mailbox: mailbox, path: fields[2])
        }()

        private init(point: HoldPoint, mailbox: Int, path: String) {
            self.point = point
            self.mailbox = mailbox
            self.path = path
        }

        /// Announces (creates `path`) and waits until `path` is removed; only once.
        func pause() {
            guard !used.exchange(true, ordering: .acquiringAndReleasing) else { return }
            // A test armed this point and waits for the announcement: failing to make it
            // is fatal at once, rather than a test timing out with no cause.
            do {
                let fd = try systemCall("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
                defer { closeDescriptor(fd) }
                let line = Array("\(getpid())\n".utf8)
                let written = try line.withUnsafeBytes { raw in try systemCall("write(\(path))") { write(fd, raw.baseAddress, raw.count) } }
                precondition(written == line.count, "short write to the hold point announcement \(path)")
            } catch {
                preconditionFailure("hold point \(point.rawValue): \(error)")
            }
            while access(path, F_OK) == 0 { usleep(5_000) }
        }
    }
#endif
