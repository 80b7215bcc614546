@preconcurrency import Glibc
import DIPCClient
import DIPCTestSupport

/// What every worker needs to know.
struct SoakPlan: Sendable {
    var ports: [Int]
    /// Mailboxes used with `r`/`w`.
    var registers: Range<Int>
    /// Mailboxes used with `p`/`c`.
    var queues: Range<Int>
    var mailboxSize: Int
    /// Monotonic seconds at which workers stop.
    var deadline: Double
    var seed: UInt64
}

/// One observation of a mailbox: its version and the value it held (nil: empty).
struct Observation: Sendable {
    var mailbox: Int
    var version: UInt64
    var value: SoakValue?
}

/// Everything one worker did and saw, for the final checks and figures.
struct WorkerLog: Sendable {
    var worker: UInt32
    /// The highest sequence number this worker used (every write and push attempt takes one).
    var attempted: UInt64 = 0
    var reads: [Observation] = []
    var acknowledgedWrites: [Observation] = []
    var acknowledgedPushes: [Observation] = []
    var takes: [Observation] = []
    /// Requests cut short by a lost connection (their effect is unknown).
    var failedWrites = 0, failedPushes = 0, failedTakes = 0, failedReads = 0
    var full = 0, empty = 0, reconnects = 0
    var otherErrors: [String] = []
    /// Broken invariants seen on the fly.
    var violations: [String] = []

    init(worker: UInt32) { self.worker = worker }

    var operations: Int { reads.count + acknowledgedWrites.count + acknowledgedPushes.count + takes.count + full + empty }
}

/// A worker: one connection (to server `worker % servers`, moving on when it is lost),
/// random requests on random mailboxes until the deadline.
enum SoakWorker {
    static func run(_ worker: Int, plan: SoakPlan) -> WorkerLog {
        var log = WorkerLog(worker: UInt32(worker))
        var random = SplitMix64(seed: plan.seed &+ UInt64(worker) &* 0x1000_0001)
        var serverIndex = worker % plan.ports.count
        var connection: DIPCConnection?
        /// The highest version this worker saw per mailbox: later ones must not be lower.
        var seen: [Int: UInt64] = [:]
        /// Per (queue, producer): the last sequence this worker took; takes of one producer's
        /// messages from one queue come out in push order.
        var lastTaken: [Int: [UInt32: UInt64]] = [:]
        let maxRegisterPayload = plan.mailboxSize - SoakValue.overhead
        let mailboxes = plan.registers.lowerBound..<plan.queues.upperBound

        func observe(_ mailbox: Int, _ version: UInt64, _ what: String) {
            if let last = seen[mailbox], version < last {
                log.violations.append("worker \(worker): \(what) on mailbox \(mailbox) returned version \(version) after \(last)")
            }
            seen[mailbox] = max(seen[mailbox] ?? 0, version)
        }

        while now() < plan.deadline {
            guard let open = connection else {
                do {
                    connection = try DIPCConnection(port: plan.ports[serverIndex], timeoutSeconds: 10)
                } catch {
                    log.reconnects += 1
                    serverIndex = (serverIndex + 1) % plan.ports.count
                    usleep(20_000)
                }
                continue
            }
            let mailbox = Int.random(in: mailboxes, using: &random)
            let roll = Int.random(in: 0..<100, using: &random)
            enum Kind { case read, write, push, take }
            let kind: Kind = plan.registers.contains(mailbox) ? (roll < 60 ? .read : .write) : (roll < 50 ? .push : .take)
            do {
                switch kind {
                case .read:
                    let message = try open.read(mailbox)
                    let value = SoakValue.decode(message.data)
                    if value == nil && !(message.data.isEmpty && message.version == 0) {
                        log.violations.append("worker \(worker): torn value in mailbox \(mailbox) at version \(message.version) (\(message.data.count) bytes)")
                    }
                    observe(mailbox, message.version, "r")
                    log.reads.append(Observation(mailbox: mailbox, version: message.version, value: value))
                case .write:
                    log.attempted += 1
                    let value = SoakValue(writer: log.worker, sequence: log.attempted)
                    let bytes = value.encoded(payloadLength: Int.random(in: 0...maxRegisterPayload, using: &random))
                    let version = try open.write(mailbox, bytes)
                    if let last = seen[mailbox], version <= last {
                        log.violations.append("worker \(worker): w on mailbox \(mailbox) acknowledged version \(version), not above \(last)")
                    }
                    observe(mailbox, version, "w")
                    log.acknowledgedWrites.append(Observation(mailbox: mailbox, version: version, value: value))
                case .push:
                    log.attempted += 1
                    let value = SoakValue(writer: log.worker, sequence: log.attempted)
                    let bytes = value.encoded(payloadLength: Int.random(in: 0...200, using: &random))
                    let version = try open.push(mailbox, bytes, waitMilliseconds: 5)
                    observe(mailbox, version, "p")
                    log.acknowledgedPushes.append(Observation(mailbox: mailbox, version: version, value: value))
                case .take:
                    let message = try open.consume(mailbox, waitMilliseconds: 5)
                    observe(mailbox, message.version, "c")
                    guard let value = SoakValue.decode(message.data) else {
                        log.violations.append("worker \(worker): torn message taken from mailbox \(mailbox) (\(message.data.count) bytes)")
                        continue
                    }
                    if let last = lastTaken[mailbox]?[value.writer], value.sequence <= last {
                        log.violations.append("worker \(worker): took \(value.writer).\(value.sequence) from mailbox \(mailbox) after \(value.writer).\(last) (out of order)")
                    }
                    lastTaken[mailbox, default: [:]][value.writer] = value.sequence
                    log.takes.append(Observation(mailbox: mailbox, version: message.version, value: value))
                }
            } catch let DIPCClientError.server(code, message) {
                switch code {
                case "full": log.full += 1
                case "empty": log.empty += 1
                default:
                    // shutdown, timeout, busy close the connection; internal is a backend failure.
                    log.otherErrors.append("\(code): \(message)")
                    if !open.isOpen { connection = nil }
                }
            } catch {
                switch kind {
                case .read: log.failedReads += 1
                case .write: log.failedWrites += 1
                case .push: log.failedPushes += 1
                case .take: log.failedTakes += 1
                }
                if case DIPCClientError.protocolViolation(let text) = error {
                    log.violations.append("worker \(worker): protocol violation: \(text)")
                }
                open.close()
                connection = nil
                serverIndex = (serverIndex + 1) % plan.ports.count
            }
        }
        connection?.close()
        return log
    }
}
