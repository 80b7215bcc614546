import DIPCCore
import Glibc

/// A server's record in the runtime directory: `key=value` lines (see
/// docs/CONVENTIONS.md). It names the process (pid and start time, so that a
/// recycled pid is never signalled) and what it holds (backend, store, IPC ids).
public struct RuntimeRecord: Sendable {
    public var fields: [(String, String)]

    public init(fields: [(String, String)]) {
        self.fields = fields
    }

    public subscript(key: String) -> String? {
        fields.first { $0.0 == key }?.1
    }

    /// The process the record names, when its pid and start time parse.
    public var process: ProcessIdentity? {
        guard let pid = self["pid"].flatMap({ Int32($0) }), let start = self["start_time"].flatMap({ UInt64($0) }) else {
            return nil
        }
        return ProcessIdentity(pid: pid, startTime: start)
    }

    /// Writes the record atomically (temporary file, then rename), mode 0600.
    public func write(to path: String) throws {
        let text = fields.map { "\($0.0)=\($0.1)\n" }.joined()
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError.last("open(\(temporary))") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else {
            unlink(temporary)
            throw SystemError.last("write(\(temporary))")
        }
        guard rename(temporary, path) == 0 else {
            let error = SystemError.last("rename(\(path))")
            unlink(temporary)
            throw error
        }
    }

    /// Reads the record at `path`; nil when there is none or it holds no fields.
    public static func read(from path: String) -> RuntimeRecord? {
        guard let text = readSmallFile(path) else { return nil }
        let fields = text.split(separator: "\n").compactMap { line -> (String, String)? in
            guard let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), String(line[eq...].dropFirst()))
        }
        return fields.isEmpty ? nil : RuntimeRecord(fields: fields)
    }
}
