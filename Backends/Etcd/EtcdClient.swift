import CCurl
import DIPCCore
import Foundation
import Synchronization

/// How an etcd call failed, which decides what the caller may promise.
enum EtcdFailure: Error, CustomStringConvertible {
    /// No endpoint took the request, or etcd refused it before proposing it (no leader):
    /// it had no effect.
    case notApplied(String)
    /// The request was sent and no answer came (timeout, connection lost, leader lost
    /// mid-proposal): it may or may not have been applied.
    case outcomeUnknown(String)
    /// etcd answered with a definite error (too large, bad request): no effect, and
    /// retrying would not help.
    case rejected(String)

    var description: String {
        switch self {
        case let .notApplied(reason), let .outcomeUnknown(reason), let .rejected(reason): return reason
        }
    }
}

/// A blocking client of etcd's v3 HTTP/JSON gateway (`POST /v3/...`) on libcurl, for
/// connection threads: each call is one `curl_easy_perform` on a pooled handle (which
/// keeps its connection open for the next call).
///
/// Not Foundation's URLSession: on Linux it dies with "Transfer completed, but there's no
/// response" on every error etcd answers (the gateway sends HTTP trailers with errors,
/// and FoundationNetworking takes a trailer for a new header), so one `no leader` would
/// kill the server.
///
/// A call goes to the endpoint that answered last; one that cannot be reached (or whose
/// node has no leader) is retried on the next endpoint until the call's deadline. A
/// change (`idempotent: false`) whose request was sent but not answered is not resent:
/// it throws `.outcomeUnknown` and the caller resolves it.
///
/// Package-visible for `dipc-bench etcd`, which measures etcd itself through it.
package final class EtcdClient: Sendable {
    package let endpoints: [String]
    /// The endpoint tried first: the last that answered.
    private let preferred = Atomic<Int>(0)
    /// Idle easy handles, each with its open connections.
    private let handles = Mutex<[CurlHandle]>([])

    package init(endpoints: [String]) {
        precondition(!endpoints.isEmpty, "etcd needs at least one endpoint")
        Curl.initialize
        self.endpoints = endpoints
    }

    /// POSTs `body` to `path` (`"/v3/kv/range"`) and returns etcd's decoded reply, trying
    /// endpoints in turn until `deadline` (`monotonicSeconds()`). `idempotent` calls
    /// (reads, keepalives) are also resent after a timeout.
    package func call(_ path: String, _ body: [String: Any], deadline: Double, idempotent: Bool) throws -> [String: Any] {
        let payload: Data
        do {
            payload = try JSONSerialization.data(withJSONObject: body)
        } catch {
            throw EtcdFailure.rejected("cannot encode an etcd request: \(error)")
        }
        var index = preferred.load(ordering: .relaxed)
        var lastReason = "no endpoint tried"
        var triedInRound = 0
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 {
                throw EtcdFailure.notApplied("no etcd endpoint answered in time (\(endpoints.joined(separator: ","))): \(lastReason)")
            }
            let endpoint = endpoints[index % endpoints.count]
            // One endpoint may use at most the time left, and no more than half of it
            // while others remain to be tried.
            let attempt = endpoints.count > 1 ? max(0.5, remaining / 2) : remaining
            if lastReason != "no endpoint tried" { EtcdMetrics.retries.increment() }
            let began = monotonicSeconds()
            let outcome = once(endpoint + path, payload, timeout: min(attempt, remaining))
            EtcdMetrics.recordRoundTrip(path, since: began)
            switch outcome {
            case let .success(reply):
                preferred.store(index % endpoints.count, ordering: .relaxed)
                return reply
            case let .failure(failure):
                switch failure {
                case .rejected: throw failure
                case let .outcomeUnknown(reason):
                    if !idempotent { throw EtcdFailure.outcomeUnknown("\(endpoint): \(reason)") }
                    lastReason = "\(endpoint): \(reason)"
                case let .notApplied(reason):
                    lastReason = "\(endpoint): \(reason)"
                }
            }
            index += 1
            triedInRound += 1
            if triedInRound >= endpoints.count {
                // Every endpoint failed once: pause briefly rather than spin.
                triedInRound = 0
                let pause = min(0.1, max(0, deadline - monotonicSeconds()))
                if pause > 0 { usleep(UInt32(pause * 1_000_000)) }
            }
        }
    }

    /// One POST to one URL.
    private func once(_ url: String, _ payload: Data, timeout: Double) -> Result<[String: Any], EtcdFailure> {
        let handle = handles.withLock { $0.popLast() } ?? CurlHandle()
        let outcome = handle.post(url, payload, timeout: timeout, headers: ["Content-Type: application/json"])
        handles.withLock { $0.append(handle) }
        switch outcome {
        case let .failure(failure): return .failure(failure)
        case let .success((status, data)):
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                return .failure(.outcomeUnknown("unreadable reply (HTTP \(status))"))
            }
            guard status == 200 else {
                let message = (object["message"] as? String) ?? (object["error"] as? String) ?? "HTTP \(status)"
                return .failure(Self.classify(etcdError: message))
            }
            return .success(object)
        }
    }

    /// An error etcd answered: refused before proposing (no leader, not started, a
    /// dropped proposal) is not applied; a timed-out or interrupted proposal is unknown
    /// (also "transport is closing": the gateway's call to its node ended mid-flight);
    /// the rest is definite.
    static func classify(etcdError message: String) -> EtcdFailure {
        let text = message.lowercased()
        if text.contains("transport is closing") {
            return .outcomeUnknown("etcd: \(message)")
        }
        if text.contains("no leader") || text.contains("not capable") || text.contains("too many requests")
            || text.contains("unhealthy cluster") || text.contains("connection refused") || text.contains("not started")
            || text.contains("proposal dropped")
        {
            return .notApplied("etcd: \(message)")
        }
        if text.contains("timed out") || text.contains("timeout") || text.contains("leader changed") || text.contains("unavailable")
            || text.contains("stopped") || text.contains("canceled") || text.contains("deadline")
        {
            return .outcomeUnknown("etcd: \(message)")
        }
        return .rejected("etcd: \(message)")
    }

}
