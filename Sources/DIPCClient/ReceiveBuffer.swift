/// The bytes received from the server and not yet consumed. No I/O of its own.
///
/// Contract:
/// - `takeLine()` returns the next complete line without its `\n` (and without a `\r`
///   right before it), or nil when no `\n` has arrived yet. Searching is incremental:
///   bytes already scanned are not scanned again.
/// - `take(upTo:)` removes and returns up to `n` buffered bytes, oldest first.
/// - `fill` lets a reader append received bytes; consumed bytes are dropped first.
struct ReceiveBuffer {
    private var storage: [UInt8] = []
    /// Index of the first unconsumed byte in `storage`.
    private var start = 0
    /// Index in `storage` up to which no `\n` was found.
    private var scanned = 0

    /// Unconsumed bytes.
    var count: Int { storage.count - start }
    var isEmpty: Bool { count == 0 }

    /// Bytes of a partial line waiting for its `\n`.
    var pendingLineLength: Int { count }

    mutating func takeLine() -> [UInt8]? {
        var index = max(scanned, start)
        while index < storage.count {
            if storage[index] == UInt8(ascii: "\n") {
                var end = index
                if end > start && storage[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                let line = Array(storage[start..<end])
                start = index + 1
                scanned = start
                return line
            }
            index += 1
        }
        scanned = index
        return nil
    }

    mutating func take(upTo n: Int) -> [UInt8] {
        let k = min(n, count)
        let bytes = Array(storage[start..<start + k])
        start += k
        if scanned < start { scanned = start }
        return bytes
    }

    /// Drops consumed bytes, then lets `receive` append to the storage; returns what it returns.
    mutating func fill(_ receive: (inout [UInt8]) throws -> Int) rethrows -> Int {
        if start > 0 {
            storage.removeSubrange(0..<start)
            scanned -= start
            start = 0
        }
        return try receive(&storage)
    }

    /// Forgets every buffered byte.
    mutating func reset() {
        storage = []
        start = 0
        scanned = 0
    }
}
