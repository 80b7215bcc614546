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
        let fd = try systemCall("open(\(temporary))") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        do {
            defer { closeDescriptor(fd) }
            let bytes = Array(text.utf8)
            let written = try bytes.withUnsafeBytes { raw in
                try systemCall("write(\(temporary))") { Glibc.write(fd, raw.baseAddress, raw.count) }
            }
            // A regular file takes a few hundred bytes in one write; anything less is a full disk.
            guard written == bytes.count else { throw SystemError("write(\(temporary))", errno: .noSpace) }
            try systemCall("rename(\(path))") { rename(temporary, path) }
        } catch {
            removeTemporary(temporary)
            throw error
        }
    }

    /// Removes the temporary copy of a record that could not be put in place. A failure
    /// is harmless: the name carries this pid, and the next write of a record by this
    /// server (or its pid's reuse) truncates and replaces it.
    private func removeTemporary(_ temporary: String) {
        ignoringFailure("the file is named after this pid and replaced by the next write") { unlink(temporary) }
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
