import DIPCCore
import Glibc

/// How a `StoreConformance` check phrases its failures, and the store calls it makes
/// (an error a store throws becomes a failure of the step that called it). `Sendable`,
/// so that the threads of a check use it as well.
struct StoreClause: Sendable, ConformanceChecking {
    /// The factory and policy, such as `"sysv (fifo)"`.
    let backend: String
    /// The check's name: every failure's `check` starts with `"\(check): "`.
    let check: String

    // MARK: failures

    func fail(_ step: String, expected: String, got: String) -> ConformanceFailure {
        ConformanceFailure(backend: backend, check: "\(check): \(step)", expected: expected, got: got)
    }


    // MARK: store calls

    func read(_ s: any MailboxStore, _ m: Int, _ step: String) throws -> ([UInt8], UInt64) {
        var buffer: [UInt8] = [0xEE, 0xEE, 0xEE]  // stale content that read must replace
        let version = try attempt("\(step): read(\(m))") { try s.read(m, into: &buffer) }
        return (buffer, version)
    }

    func version(_ s: any MailboxStore, _ m: Int, _ step: String) throws -> UInt64 {
        try attempt("\(step): version(of: \(m))") { try s.version(of: m) }
    }

    func write(_ s: any MailboxStore, _ m: Int, _ value: [UInt8], _ step: String) throws -> UInt64 {
        try attempt("\(step): write(\(m), \(value.count) bytes)") { try value.withUnsafeBytes { try s.write(m, $0) } }
    }

    func push(_ s: any MailboxStore, _ m: Int, _ value: [UInt8], _ wait: @autoclosure () -> MailboxWait,
              _ step: String) throws -> Ended {
        try attempt("\(step): push(\(m), \(value.count) bytes)") {
            Ended(try value.withUnsafeBytes { try s.push(m, $0, waiting: wait()) })
        }
    }

    /// A take and the bytes it took (the buffer starts with stale content).
    func take(_ s: any MailboxStore, _ m: Int, _ wait: @autoclosure () -> MailboxWait,
              _ step: String) throws -> (ended: Ended, data: [UInt8]) {
        var buffer: [UInt8] = [0xEE]
        let ended = try attempt("\(step): take(\(m))") { Ended(try s.take(m, into: &buffer, waiting: wait())) }
        return (ended, buffer)
    }

    func waitForChange(_ s: any MailboxStore, _ m: Int, after version: UInt64, _ wait: @autoclosure () -> MailboxWait,
                       _ step: String) throws -> Ended {
        try attempt("\(step): waitForChange(of: \(m), after: \(version))") {
            Ended(try s.waitForChange(of: m, after: version, waiting: wait()))
        }
    }

    /// Expects the mailbox to read `value` at `version`, through `read` and `version(of:)`.
    func expectContent(_ s: any MailboxStore, _ m: Int, _ value: [UInt8], _ version: UInt64, _ step: String) throws {
        let (data, v) = try read(s, m, step)
        try expectBytes(data, value, "\(step): read(\(m)) data")
        try expect(v, version, "\(step): read(\(m)) version")
        try expect(try self.version(s, m, step), version, "\(step): version(of: \(m))")
    }
}

/// How a store call that may wait ended, comparable and `Sendable` (for threads).
enum Ended: Equatable, Sendable, CustomStringConvertible {
    /// A push or take succeeded with this version.
    case done(UInt64)
    /// `waitForChange` saw the version pass.
    case changed
    case timedOut
    case abandoned

    init(_ outcome: MailboxWaitOutcome<UInt64>) {
        switch outcome {
        case let .done(version): self = .done(version)
        case .timedOut: self = .timedOut
        case .abandoned: self = .abandoned
        }
    }

    init(_ outcome: MailboxWaitOutcome<Void>) {
        switch outcome {
        case .done: self = .changed
        case .timedOut: self = .timedOut
        case .abandoned: self = .abandoned
        }
    }

    var description: String {
        switch self {
        case let .done(version): return ".done(version \(version))"
        case .changed: return ".done (changed)"
        case .timedOut: return ".timedOut"
        case .abandoned: return ".abandoned"
        }
    }
}

/// Polls `condition` every millisecond until it holds (true) or `seconds` pass (false).
func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicSeconds() + seconds
    while !condition() {
        if monotonicSeconds() >= deadline { return false }
        usleep(1_000)
    }
    return true
}
