import DIPCCore
import Foundation
import Synchronization

/// A server's etcd lease: its places in line and its server key are bound to it, so
/// they vanish within `ttl` seconds of the server's death. A keepalive thread renews it
/// every second; if it expired anyway (a partition longer than the TTL), the thread
/// grants a new one and calls `renewed` so that the server re-registers.
final class EtcdLease: @unchecked Sendable {
    /// Seconds a lease outlives its last keepalive (SPEC §4: a dead server's places
    /// vanish within 10 s).
    static let ttl = 6
    /// Seconds between keepalives.
    static let keepaliveInterval = 1.0

    private let client: EtcdClient
    private let current: Atomic<Int64>
    private let condition = NSCondition()
    private var stopped = false
    private var thread: Thread?

    /// The lease now.
    var id: Int64 { current.load(ordering: .acquiring) }

    /// Grants a lease, trying until `deadline`.
    init(client: EtcdClient, deadline: Double) throws {
        self.client = client
        current = Atomic(try Self.grant(client, deadline: deadline))
    }

    private static func grant(_ client: EtcdClient, deadline: Double) throws -> Int64 {
        let reply = try client.call("/v3/lease/grant", ["TTL": String(ttl)], deadline: deadline, idempotent: true)
        let id = EtcdJSON.int(reply["ID"])
        guard id != 0 else { throw EtcdFailure.rejected("etcd granted no lease: \(reply)") }
        return id
    }

    /// Starts the keepalive thread. `renewed(newID)` runs on it after the lease had to be
    /// replaced; `tick` runs on it after every keepalive (housekeeping).
    func startKeepalive(renewed: @escaping @Sendable (Int64) -> Void, tick: @escaping @Sendable () -> Void) {
        let thread = Thread { [self] in
            while waitInterval() {
                let lease = id
                let deadline = monotonicSeconds() + Double(Self.ttl) / 2
                do {
                    let reply = try client.call("/v3/lease/keepalive", ["ID": String(lease)], deadline: deadline, idempotent: true)
                    let result = (reply["result"] as? [String: Any]) ?? reply
                    if EtcdJSON.int(result["TTL"]) <= 0 {
                        let fresh = try Self.grant(client, deadline: deadline)
                        current.store(fresh, ordering: .releasing)
                        renewed(fresh)
                    }
                } catch {
                    // Unreachable for now: the next tick tries again (requests meanwhile
                    // answer `err unavailable` on their own).
                }
                tick()
            }
        }
        thread.name = "dipc-etcd-lease"
        self.thread = thread
        thread.start()
    }

    /// Waits one interval; false once stopped.
    private func waitInterval() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if !stopped { _ = condition.wait(until: Date(timeIntervalSinceNow: Self.keepaliveInterval)) }
        return !stopped
    }

    /// Stops the keepalive thread (it exits after its current call).
    func stopKeepalive() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Revokes the lease: every key bound to it vanishes now.
    func revoke(deadline: Double) throws {
        _ = try client.call("/v3/lease/revoke", ["ID": String(id)], deadline: deadline, idempotent: true)
    }

    /// Revokes lease `id` (dipcrm after a crash); a lease that already expired is fine.
    static func revoke(_ id: Int64, client: EtcdClient, deadline: Double) throws {
        do {
            _ = try client.call("/v3/lease/revoke", ["ID": String(id)], deadline: deadline, idempotent: true)
        } catch let failure as EtcdFailure {
            if case let .rejected(reason) = failure, reason.contains("not found") { return }
            throw failure
        }
    }
}
