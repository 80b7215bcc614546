import DIPCCore
import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The one watch stream of a server (a store handle) on its store's keys
/// (`POST /v3/watch` on the gateway, a chunked reply of one JSON object per line): each
/// event bumps its mailbox on the `WakeBoard`.
///
/// When the stream ends (endpoint down, node without leader — the request asks for
/// `hasleader` so that a cut-off node ends it instead of stalling — idle timeout,
/// compaction) it is re-established on the next endpoint from the revision after the
/// last one seen; every mailbox is bumped once the new stream is created, so that
/// waiters re-read whatever changed meanwhile (also when that revision was compacted).
final class EtcdWatch: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let endpoints: [String]
    private let layout: EtcdLayout
    private let board: WakeBoard
    private let lock = NSLock()
    private var session: URLSession!
    private var task: URLSessionDataTask?
    private var buffer = Data()
    private var lastRevision: Int64 = 0
    private var endpointIndex = 0
    private var stopped = false
    /// Streams created so far (tests and logs).
    private(set) var streamsCreated = 0

    /// Seconds without a byte after which the stream is re-established.
    static let idleSeconds = 120.0

    init(endpoints: [String], layout: EtcdLayout, board: WakeBoard) {
        self.endpoints = endpoints
        self.layout = layout
        self.board = board
        super.init()
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = Self.idleSeconds
        configuration.timeoutIntervalForResource = 7 * 86_400
        session = URLSession(configuration: configuration, delegate: self, delegateQueue: queue)
    }

    func start() { lock.withLock { open() } }

    /// Ends the stream for good.
    func stop() {
        lock.lock()
        stopped = true
        let current = task
        task = nil
        lock.unlock()
        current?.cancel()
        session.invalidateAndCancel()
    }

    /// Opens a stream (with `lock` held).
    private func open() {
        guard !stopped else { return }
        buffer.removeAll()
        var create: [String: Any] = [
            "key": EtcdJSON.base64(layout.prefix), "range_end": EtcdJSON.base64(EtcdJSON.prefixEnd(layout.prefix)),
        ]
        if lastRevision > 0 { create["start_revision"] = String(lastRevision + 1) }
        var request = URLRequest(url: URL(string: endpoints[endpointIndex % endpoints.count] + "/v3/watch")!,
                                 timeoutInterval: Self.idleSeconds)
        request.httpMethod = "POST"
        request.setValue("true", forHTTPHeaderField: "Grpc-Metadata-hasleader")
        request.httpBody = try? JSONSerialization.data(withJSONObject: ["create_request": create])
        let next = session.dataTask(with: request)
        task = next
        next.resume()
    }

    /// Re-establishes the stream on the next endpoint after a short pause.
    private func reopen(after seconds: Double, forgettingRevision: Bool = false) {
        lock.withLock {
            task = nil
            endpointIndex += 1
            if forgettingRevision { lastRevision = 0 }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [weak self] in
            guard let self else { return }
            self.lock.withLock { if self.task == nil { self.open() } }
        }
    }

    // MARK: URLSessionDataDelegate

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        lock.lock()
        guard dataTask === task else {
            lock.unlock()
            return
        }
        buffer.append(data)
        var lines: [Data] = []
        while let newline = buffer.firstIndex(of: 0x0A) {
            lines.append(buffer[buffer.startIndex..<newline])
            buffer.removeSubrange(buffer.startIndex...newline)
        }
        lock.unlock()
        for line in lines where !line.isEmpty { handle(line, from: dataTask) }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let current = lock.withLock { task === self.task && !stopped }
        if current { reopen(after: 0.1) }
    }

    /// One JSON object of the stream.
    private func handle(_ line: Data, from dataTask: URLSessionDataTask) {
        guard let object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else { return }
        guard let result = object["result"] as? [String: Any] else {
            // `{"error": ...}`: the stream failed (no leader, ...): start over.
            dataTask.cancel()
            return
        }
        let revision = EtcdJSON.revision(result)
        if (result["canceled"] as? Bool) == true {
            let compacted = EtcdJSON.int(result["compact_revision"]) > 0
            lock.withLock { if dataTask === task { task = nil } }
            dataTask.cancel()
            reopen(after: compacted ? 0 : 0.1, forgettingRevision: compacted)
            return
        }
        var mailboxes = Set<Int>()
        for event in (result["events"] as? [[String: Any]]) ?? [] {
            let kv = EtcdJSON.KeyValue((event["kv"] as? [String: Any]) ?? [:])
            if let m = layout.mailboxNumber(ofKey: kv.key) { mailboxes.insert(m) }
            lock.withLock { lastRevision = max(lastRevision, kv.modRevision) }
        }
        if (result["created"] as? Bool) == true {
            lock.withLock {
                streamsCreated += 1
                if lastRevision == 0 { lastRevision = revision }
            }
            board.bumpAll()
        }
        board.bump(mailboxes)
    }
}
