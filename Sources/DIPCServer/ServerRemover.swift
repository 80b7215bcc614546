import DIPCCore
import DIPCRuntime
import Glibc

/// What `dipcrm PORT` does: stop the server recorded for the port gracefully, or, if
/// it had crashed, remove what it left behind. Never signals a process other than
/// the recorded one (pid and start time must both match), and touches nothing of
/// another user's (a record or a live server owned by another uid is refused).
public struct ServerRemover {
    public let runtime: RuntimeDirectory
    public let port: Int
    /// Seconds to wait for a graceful stop before SIGKILL (longer than the server's whole
    /// stop: see `ServerTimeouts`).
    public var stopTimeoutSeconds: Double = ServerTimeouts.standard.removerStopSeconds
    /// Cleans up the store of a server that died without detaching; returns a sentence
    /// for the user. Given the dead server's record.
    public var cleanUpStore: (RuntimeRecord) throws -> String

    public init(runtime: RuntimeDirectory, port: Int, cleanUpStore: @escaping (RuntimeRecord) throws -> String) {
        self.runtime = runtime
        self.port = port
        self.cleanUpStore = cleanUpStore
    }

    public struct Outcome {
        /// Lines for stdout.
        public var messages: [String] = []
        /// Why it failed (for stderr, exit 1), or nil.
        public var failure: String?
    }

    public func remove() -> Outcome {
        var outcome = Outcome()
        let path = runtime.recordPath(port: port)
        var found = false
        if let record = RuntimeRecord.read(from: path), let process = record.process {
            found = true
            stop(process, recordedAt: path, record: record, into: &outcome)
            if outcome.failure != nil { return outcome }
        } else if access(path, F_OK) == 0 {
            guard removeRecord(path, into: &outcome) else { return outcome }
            outcome.messages.append("dipcrm: removed an unreadable runtime record \(path)")
        }
        // Servers that crashed on this port before another one took it over.
        for crashedPath in runtime.crashedRecordPaths(port: port) {
            guard let record = RuntimeRecord.read(from: crashedPath), let process = record.process, !process.isAlive,
                  Self.owner(of: crashedPath) == geteuid() else { continue }
            found = true
            outcome.messages.append("dipcrm: an earlier dipc server on port \(port) (pid \(process.pid)) had crashed; cleaning up after it")
            cleanUp(record, recordedAt: crashedPath, into: &outcome)
        }
        if !found { outcome.failure = "no dipc server on port \(port)" }
        return outcome
    }

    /// Stops the live server `process` recorded at `path` (or notes that it crashed),
    /// then cleans up what it leaves.
    private func stop(_ process: ProcessIdentity, recordedAt path: String, record: RuntimeRecord, into outcome: inout Outcome) {
        if let owner = Self.owner(of: path), owner != geteuid() {
            outcome.failure = "the runtime record \(path) belongs to uid \(owner), not to you (uid \(geteuid())); not touching it"
            return
        }
        if process.isAlive, let owner = Self.owner(of: "/proc/\(process.pid)"), owner != geteuid() {
            outcome.failure = "the dipc server on port \(port) (pid \(process.pid)) belongs to uid \(owner), not to you (uid \(geteuid())); not touching it"
            return
        }
        if process.isAlive {
            do {
                try systemCall("kill(SIGTERM)") { kill(process.pid, SIGTERM) }
            } catch let error as SystemError where error.errno == .noSuchProcess {
                // It exited just now: waitForExit returns at once.
            } catch {
                outcome.failure = "cannot stop the dipc server on port \(port) (pid \(process.pid)): \(error)"
                return
            }
            if waitForExit(of: process, seconds: stopTimeoutSeconds) {
                if access(path, F_OK) != 0 {
                    outcome.messages.append("dipcrm: stopped the dipc server on port \(port) (pid \(process.pid))")
                    return
                }
                outcome.messages.append("dipcrm: the dipc server on port \(port) (pid \(process.pid)) exited without cleaning up")
            } else {
                // ESRCH (it exited at last) is the outcome wanted; EPERM was ruled out by SIGTERM.
                ignoringFailure("a process that is gone already needs no SIGKILL") { kill(process.pid, SIGKILL) }
                // Cleaned up after either way, as a process that outlives SIGKILL is stuck in the kernel.
                _ = waitForExit(of: process, seconds: ServerTimeouts.standard.removerKillSeconds)
                outcome.messages.append("dipcrm: the dipc server on port \(port) (pid \(process.pid)) did not stop within \(Int(stopTimeoutSeconds)) s; killed it")
            }
        } else {
            outcome.messages.append("dipcrm: the dipc server on port \(port) (pid \(process.pid)) had crashed; cleaning up after it")
        }
        cleanUp(record, recordedAt: path, into: &outcome)
    }

    /// Cleans up the store of the dead server `record` names, and its Unix socket file
    /// (when nothing listens on it any more), then removes the record.
    private func cleanUp(_ record: RuntimeRecord, recordedAt path: String, into outcome: inout Outcome) {
        do {
            outcome.messages.append("dipcrm: " + (try cleanUpStore(record)))
        } catch {
            outcome.failure = "could not clean up the store of the server on port \(port): \(error)"
        }
        if let socketPath = record["unix"], !socketPath.isEmpty, UnixListeningSocket.removeStale(socketPath) {
            outcome.messages.append("dipcrm: removed the Unix socket \(socketPath)")
        }
        if removeRecord(path, into: &outcome) {
            outcome.messages.append("dipcrm: removed the runtime record \(path)")
        }
    }

    /// Removes the runtime record `path` and returns true; one already gone counts as
    /// removed. Any other failure becomes the outcome's failure (unless it has one).
    private func removeRecord(_ path: String, into outcome: inout Outcome) -> Bool {
        do {
            try systemCall("unlink(\(path))") { unlink(path) }
        } catch let error as SystemError where error.errno != .noSuchFileOrDirectory {
            outcome.failure = outcome.failure ?? "cannot remove the runtime record \(path): \(error)"
            return false
        } catch {}
        return true
    }

    /// The user owning `path` (for `/proc/PID`, the process's effective uid), or nil
    /// when it cannot be looked at.
    static func owner(of path: String) -> uid_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_uid : nil
    }

    /// Polls until `process` has exited (or is a zombie); false after `seconds`.
    private func waitForExit(of process: ProcessIdentity, seconds: Double) -> Bool {
        let deadline = monotonicSeconds() + seconds
        while process.isAlive {
            if monotonicSeconds() > deadline { return false }
            usleep(10_000)
        }
        return true
    }
}
