import DIPCCore
import Foundation
import Synchronization

/// The one watch stream of a server (a store handle) on its store's keys
/// (`POST /v3/watch` on the gateway, a chunked reply of one JSON object per line), on a
/// thread of its own: each event bumps its mailbox on the `WakeBoard`.
///
/// When the stream ends (endpoint down, node without leader — the request asks for
/// `hasleader` so that a cut-off node ends it instead of stalling — idle for
/// `idleSeconds`, compaction) it is re-established on the next endpoint from the revision
/// after the last one seen; every mailbox is bumped once the new stream is created, so
/// that waiters re-read whatever changed meanwhile (also when that revision was compacted).
final class EtcdWatch: @unchecked Sendable {
    private let endpoints: [String]
    private let layout: EtcdLayout
    private let board: WakeBoard
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// The newest revision whose events were handled (0: none yet).
    private var lastRevision: Int64 = 0
    /// Set by a line that asks for a new stream (an error or a cancellation).
    private var restart = false

    /// Seconds without a byte after which the stream is re-established.
    static let idleSeconds = 120

    init(endpoints: [String], layout: EtcdLayout, board: WakeBoard) {
        self.endpoints = endpoints
        self.layout = layout
        self.board = board
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "dipc-etcd-watch"
        thread.start()
    }

    /// Ends the stream for good and waits for its thread (at most a second or so).
    func stop() {
        stopped.store(true, ordering: .relaxed)
        _ = finished.wait(timeout: .now() + 2)
    }

    private func run() {
        let handle = CurlHandle()
        var index = 0
        while !stopped.load(ordering: .relaxed) {
            var create: [String: Any] = [
                "key": EtcdJSON.base64(layout.prefix), "range_end": EtcdJSON.base64(EtcdJSON.prefixEnd(layout.prefix)),
                "progress_notify": true,
            ]
            if lastRevision > 0 { create["start_revision"] = String(lastRevision + 1) }
            let body = (try? JSONSerialization.data(withJSONObject: ["create_request": create])) ?? Data()
            restart = false
            _ = handle.stream(
                endpoints[index % endpoints.count] + "/v3/watch", body,
                headers: ["Content-Type: application/json", "Grpc-Metadata-hasleader: true"], idleSeconds: Self.idleSeconds,
                shouldStop: { [self] in stopped.load(ordering: .relaxed) || restart },
                line: { [self] line in receive(line) })
            index += 1
            // Whatever ended it, pause briefly before the next endpoint.
            for _ in 0..<2 where !stopped.load(ordering: .relaxed) { usleep(50_000) }
        }
    }

    /// One JSON object of the stream.
    private func receive(_ line: Data) {
        guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { return }
        guard let result = object["result"] as? [String: Any] else {
            // `{"error": ...}`: the stream failed (no leader, ...): start over.
            restart = true
            return
        }
        if (result["canceled"] as? Bool) == true {
            // Compacted past the revision asked for: start from now; the bump on
            // creation makes every waiter re-read.
            if EtcdJSON.int(result["compact_revision"]) > 0 { lastRevision = 0 }
            restart = true
            return
        }
        var mailboxes = Set<Int>()
        for event in (result["events"] as? [[String: Any]]) ?? [] {
            let kv = EtcdJSON.KeyValue((event["kv"] as? [String: Any]) ?? [:])
            if let m = layout.mailboxNumber(ofKey: kv.key) { mailboxes.insert(m) }
            lastRevision = max(lastRevision, kv.modRevision)
        }
        if (result["created"] as? Bool) == true {
            if lastRevision == 0 { lastRevision = EtcdJSON.revision(result) }
            board.bumpAll()
        }
        board.bump(mailboxes)
    }
}
