import DIPCCore
import DIPCRuntime
import Glibc
import Logging

/// This server's runtime record file (`dipc-PORT.record`, see docs/CONVENTIONS.md) through
/// start-up and shutdown.
///
/// A crashed server's record is set aside (`dipc-PORT.crashed-PID.record`), never
/// overwritten: `dipcrm PORT` must still be able to clean up what it left behind. A
/// start-up that fails before `publish` puts it back.
final class RecordKeeper {
    let path: String
    private let runtime: RuntimeDirectory
    private let port: Int
    /// The record found on the port before this server started.
    private let previous: RuntimeRecord?
    /// Where `previous` was set aside, until `publish` settles it.
    private var setAside: String?

    /// Reads the port's current record.
    init(runtime: RuntimeDirectory, port: Int) {
        self.runtime = runtime
        self.port = port
        path = runtime.recordPath(port: port)
        previous = RuntimeRecord.read(from: path)
    }

    /// Throws when a live server holds the port's record (possibly on another address,
    /// which binding would not notice): its record must not be overwritten.
    func checkNoLiveServer() throws(StartupError) {
        if let previous, let owner = previous.process, owner.isAlive {
            throw StartupError("port \(port) already has a dipc server (pid \(owner.pid), on \(previous["bind"] ?? "?")); stop it with dipcrm \(port) first")
        }
    }

    /// Sets a crashed server's record aside, then writes `first` (the record before the
    /// store exists, so that `dipcrm` can clean up if this process dies creating it).
    /// On failure leaves the port's records as it found them.
    func claim(writing first: RuntimeRecord) throws(StartupError) {
        if let crashed = previous?.process {
            let crashedPath = runtime.crashedRecordPath(port: port, pid: crashed.pid)
            do {
                try systemCall("rename(\(path), \(crashedPath))") { rename(path, crashedPath) }
            } catch {
                throw StartupError("cannot set aside the record of the crashed server on port \(port): \(error)")
            }
            setAside = crashedPath
        }
        do {
            try first.write(to: path)
        } catch {
            withdraw()
            throw StartupError("cannot write the runtime record \(path): \(error)")
        }
    }

    /// Replaces the record with `serving` (which names the opened store), then settles the
    /// crashed server's record: removed when this server now holds the same store (its own
    /// stop or `dipcrm` removes it), else kept for `dipcrm` with a warning.
    func publish(_ serving: RuntimeRecord, logger: Logger) throws {
        try serving.write(to: path)
        guard let crashedPath = setAside, let previous else { return }
        setAside = nil
        if Self.sameStore(previous, serving) {
            ignoringFailure("a record already removed (by dipcrm) needs no removing") { unlink(crashedPath) }
        } else {
            logger.warning("kept the record of the crashed server on this port: dipcrm \(port) cleans up its store too",
                           metadata: ["record": "\(crashedPath)", "store": "\(previous["name"] ?? "?")"])
        }
    }

    /// Removes this server's record; puts a crashed server's record back unless `publish` settled it.
    func withdraw() {
        ignoringFailure("a record that was never written or is gone already needs no removing") { unlink(path) }
        if let crashedPath = setAside {
            // Only lost when the directory itself became unusable; then dipcrm cannot read it either way.
            ignoringFailure("best effort: the crashed record stays under its set-aside name") { rename(crashedPath, path) }
            setAside = nil
        }
    }

    /// Whether two records name the same store (backend, name and, for tdb, file).
    private static func sameStore(_ a: RuntimeRecord, _ b: RuntimeRecord) -> Bool {
        a["backend"] == b["backend"] && a["name"] == b["name"] && a["db"] == b["db"]
    }
}
