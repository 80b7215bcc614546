import Foundation

/// The pieces of etcd's JSON gateway format: keys and values are base64, 64-bit numbers
/// come as strings, and fields at their default value (0, false, empty) are left out,
/// so every reader here defaults them.
enum EtcdJSON {
    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }
    static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// The end of the range of keys beginning with `prefix` (its last byte plus one).
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        bytes[bytes.count - 1] += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A 64-bit field: a string or a number, 0 when absent.
    static func int(_ value: Any?) -> Int64 {
        switch value {
        case let text as String: return Int64(text) ?? 0
        case let number as NSNumber: return number.int64Value
        default: return 0
        }
    }

    /// `header.revision` of a reply.
    static func revision(_ reply: [String: Any]) -> Int64 {
        int((reply["header"] as? [String: Any])?["revision"])
    }

    /// One key-value of a reply's `kvs`.
    struct KeyValue {
        var key: String
        var value: [UInt8]
        var createRevision: Int64
        var modRevision: Int64
        var version: Int64
        var lease: Int64

        init(_ object: [String: Any]) {
            key = (object["key"] as? String).flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) } ?? ""
            value = (object["value"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? []
            createRevision = EtcdJSON.int(object["create_revision"])
            modRevision = EtcdJSON.int(object["mod_revision"])
            version = EtcdJSON.int(object["version"])
            lease = EtcdJSON.int(object["lease"])
        }
    }

    /// The key-values of a range reply (or of a txn's `response_range`).
    static func kvs(_ rangeReply: [String: Any]?) -> [KeyValue] {
        ((rangeReply?["kvs"] as? [[String: Any]]) ?? []).map(KeyValue.init)
    }

    /// `count` of a range reply.
    static func count(_ rangeReply: [String: Any]?) -> Int { Int(int(rangeReply?["count"])) }

    // MARK: request pieces

    /// A range request body for one key or, with `prefix`, every key beginning with it.
    static func range(_ key: String, prefix: Bool = false, keysOnly: Bool = false, countOnly: Bool = false,
                      oldestFirst: Bool = false, limit: Int = 0) -> [String: Any] {
        var body: [String: Any] = ["key": base64(key)]
        if prefix { body["range_end"] = base64(prefixEnd(key)) }
        if keysOnly { body["keys_only"] = true }
        if countOnly { body["count_only"] = true }
        if oldestFirst {
            body["sort_target"] = "CREATE"
            body["sort_order"] = "ASCEND"
        }
        if limit > 0 { body["limit"] = String(limit) }
        return body
    }

    static func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) -> [String: Any] {
        var body: [String: Any] = ["key": base64(key), "value": base64(value)]
        if lease != 0 { body["lease"] = String(lease) }
        return body
    }

    static func delete(_ key: String, prefix: Bool = false) -> [String: Any] {
        var body: [String: Any] = ["key": base64(key)]
        if prefix { body["range_end"] = base64(prefixEnd(key)) }
        return body
    }

    /// A txn compare: `target` (`MOD`, `CREATE`, `VERSION`) of `key` (or of every key
    /// beginning with it, with `prefix`; an empty range compares as 0) against `value`.
    static func compare(_ key: String, prefix: Bool = false, target: String, _ result: String, _ value: Int64) -> [String: Any] {
        let field = ["MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version"][target]!
        var body: [String: Any] = ["key": base64(key), "target": target, "result": result, field: String(value)]
        if prefix { body["range_end"] = base64(prefixEnd(key)) }
        return body
    }

    /// A txn body.
    static func txn(compare: [[String: Any]] = [], success: [[String: Any]], failure: [[String: Any]] = []) -> [String: Any] {
        ["compare": compare, "success": success, "failure": failure]
    }

    /// Whether a txn reply succeeded, and its responses (`response_range` etc.).
    static func txnResult(_ reply: [String: Any]) -> (succeeded: Bool, responses: [[String: Any]]) {
        ((reply["succeeded"] as? Bool) ?? false, (reply["responses"] as? [[String: Any]]) ?? [])
    }
}
