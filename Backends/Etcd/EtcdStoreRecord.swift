import DIPCCore

/// The store's record at `dipc/NAME/store`: one line of text,
/// `dipc-etcd format=1 mailboxes=N mailbox_size=BYTES coordinator=POLICY`, written by
/// the first server (create-if-absent) and checked by every later one.
enum EtcdStoreRecord {
    static func text(geometry: StoreGeometry, policy: CoordinatorPolicy) -> String {
        "dipc-etcd format=\(EtcdStore.formatVersion) mailboxes=\(geometry.mailboxes) mailbox_size=\(geometry.mailboxSize) coordinator=\(policy.rawValue)"
    }

    /// Writes the record when the store is new, else checks it: another geometry or
    /// coordinator throws the `StoreError` naming both.
    static func createOrCheck(client: EtcdClient, layout: EtcdLayout, geometry: StoreGeometry, policy: CoordinatorPolicy,
                              deadline: Double) throws {
        let mine = text(geometry: geometry, policy: policy)
        // Create-if-absent: resending it is harmless.
        let reply = try client.call("/v3/kv/txn", EtcdJSON.txn(
            compare: [EtcdJSON.compare(layout.record, target: "CREATE", "EQUAL", 0)],
            success: [["request_put": EtcdJSON.put(layout.record, Array(mine.utf8))]],
            failure: [["request_range": EtcdJSON.range(layout.record)]]), deadline: deadline, idempotent: true)
        let (created, responses) = EtcdJSON.txnResult(reply)
        guard !created else { return }
        guard let stored = responses.first.flatMap({ EtcdJSON.kvs($0["response_range"] as? [String: Any]).first }) else {
            throw StoreError.corrupt(name: layout.name, reason: "its record vanished while opening it")
        }
        let fields = Dictionary(
            String(decoding: stored.value, as: UTF8.self).split(separator: " ").compactMap { part -> (String, String)? in
                let pair = part.split(separator: "=", maxSplits: 1)
                return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
        guard fields["format"] == String(EtcdStore.formatVersion), let mailboxes = fields["mailboxes"].flatMap({ Int($0) }),
              let size = fields["mailbox_size"].flatMap({ Int($0) }), mailboxes > 0, size > 0, let coordinator = fields["coordinator"]
        else {
            throw StoreError.corrupt(name: layout.name, reason: "\(layout.record) holds \"\(String(decoding: stored.value, as: UTF8.self))\"")
        }
        let existing = StoreGeometry(mailboxes: mailboxes, mailboxSize: size)
        if existing != geometry {
            throw StoreError.geometryMismatch(name: layout.name, existing: existing, requested: geometry)
        }
        if coordinator != policy.rawValue {
            throw StoreError.coordinatorMismatch(name: layout.name, existing: coordinator, requested: policy.rawValue)
        }
    }
}
