import DIPCCore
import Glibc
import Logging

/// A swift-log handler that appends one line per message to a file descriptor
/// (a log file, or stderr in the foreground). Lines are written with one `write`
/// call, so lines from concurrent threads never interleave.
public struct FileLogHandler: LogHandler {
    private let fd: Int32
    private let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]

    public init(label: String, fd: Int32) {
        self.label = label
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        event.metadata?.forEach { all[$0.key] = $0.value }
        let extra = all.isEmpty ? "" : " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "\(timestamp()) \(event.level) \(label)[\(getpid())]: \(event.message)\(extra)\n"
        let bytes = Array(text.utf8)
        // A log line that cannot be written (full disk, closed stderr) has nowhere else to
        // go; the server keeps serving.
        ignoringFailure("a failed log write cannot itself be logged") {
            bytes.withUnsafeBytes { raw in try? systemCall("write(log)") { Glibc.write(fd, raw.baseAddress, raw.count) } }
        }
    }

    private func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
