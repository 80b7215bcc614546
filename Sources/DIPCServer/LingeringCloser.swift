import CDIPCShims
import DIPCCore
import Glibc
import Synchronization

/// Closes sockets after their final reply without a thread each (SPEC §3 "Resources").
///
/// A lingering close sends FIN at once, then discards what the peer still sends for at
/// most `lingerSeconds` (or 1 MiB) before closing, so that the final reply (`err busy`,
/// `bye`, `err timeout`...) is not destroyed by a reset when the peer had unread bytes in
/// flight. One thread ("dipc-linger") does this for every socket handed to `close(_:)`,
/// with one `poll`. At most `maximumSockets` sockets linger at once: beyond that a
/// socket is closed at once (its reply may then be lost to a reset, which only a client
/// flooding the server can cause), so a connection flood costs neither a thread nor
/// more than `maximumSockets` descriptors.
final class LingeringCloser: Sendable {
    /// Sockets lingering at once, at most.
    static let maximumSockets = 32
    /// Bytes discarded from one socket before it is closed anyway.
    static let maximumDiscardedBytes = 1 << 20

    let lingerSeconds: Double

    private struct State {
        /// Handed over and not yet picked up by the thread.
        var arrived: [Int32] = []
        /// Sockets handed over and not yet closed (arrived or lingering).
        var open = 0
        /// Between `start` and `stop`: sockets handed over linger; otherwise they are closed at once.
        var accepting = false
        var stopping = false
        /// No thread polls the wake-up pipe (none started yet, or it has ended).
        var threadFinished = true
    }

    private let state = Mutex(State())
    /// The thread sleeps in `poll` on this pipe's read end too; a byte wakes it.
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    /// Throws when the wake-up pipe cannot be created (out of descriptors).
    init(lingerSeconds: Double) throws {
        self.lingerSeconds = lingerSeconds
        var fds: [Int32] = [0, 0]
        try systemCall("pipe2") { cdipc_pipe_cloexec(&fds) }
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
        for fd in fds {
            do {
                let flags = try systemCall("fcntl(F_GETFL)") { fcntl(fd, F_GETFL) }
                try systemCall("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
            } catch {
                closeDescriptor(fds[0])
                closeDescriptor(fds[1])
                throw error
            }
        }
    }

    /// Starts the thread. Call once, before any `close(_:)`; until then (and after
    /// `stop`) sockets are closed at once.
    func start() throws {
        state.withLock { $0.accepting = true; $0.threadFinished = false }
        do {
            try startDetachedThread(name: "dipc-linger") { [self] in run() }
        } catch {
            state.withLock { $0.accepting = false; $0.threadFinished = true }
            throw error
        }
    }

    /// Takes over `fd`, a connected socket whose final reply has been sent: shuts down
    /// its sending side now and closes it within `lingerSeconds`, or at once when
    /// `maximumSockets` already linger or the closer is stopped. Never blocks on the peer.
    func close(_ fd: Int32) {
        ignoringFailure("a peer that already reset the connection (ENOTCONN) is gone anyway") {
            shutdown(fd, Int32(SHUT_WR))
        }
        let accepted = state.withLock { state -> Bool in
            guard state.accepting, !state.stopping, state.open < Self.maximumSockets else { return false }
            state.open += 1
            state.arrived.append(fd)
            return true
        }
        guard accepted else {
            closeDescriptor(fd)
            return
        }
        wake()
    }

    /// Sockets handed over and not yet closed.
    var lingeringCount: Int { state.withLock { $0.open } }

    /// Lets the sockets lingering now finish (their peers close, or `lingerSeconds`
    /// pass), then closes what is left and ends the thread, waiting for it at most
    /// `timeoutSeconds`; `close(_:)` calls close at once from the start of `stop`. Call
    /// once (also when `start` was never called or failed).
    func stop(timeoutSeconds: Double = 1) {
        let lingerDeadline = monotonicSeconds() + lingerSeconds
        state.withLock { $0.accepting = false }
        while state.withLock({ $0.open > 0 && !$0.threadFinished }) && monotonicSeconds() < lingerDeadline { usleep(5_000) }
        state.withLock { $0.stopping = true }
        wake()
        let deadline = monotonicSeconds() + timeoutSeconds
        while !state.withLock({ $0.threadFinished }) && monotonicSeconds() < deadline { usleep(1_000) }
        // A thread that did not finish still polls the pipe: leave it open then.
        if state.withLock({ $0.threadFinished }) {
            closeDescriptor(wakeReadFD)
            closeDescriptor(wakeWriteFD)
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        ignoringFailure("a full pipe (EAGAIN) already holds a wake-up") { write(wakeWriteFD, &byte, 1) }
    }

    private struct Lingering {
        var fd: Int32
        var deadline: Double
        var discarded = 0
    }

    private func run() {
        var lingering: [Lingering] = []
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        var pollSet: [pollfd] = []
        while true {
            let (arrived, stopping) = state.withLock { state -> ([Int32], Bool) in
                defer { state.arrived.removeAll(keepingCapacity: true) }
                return (state.arrived, state.stopping)
            }
            let now = monotonicSeconds()
            lingering += arrived.map { Lingering(fd: $0, deadline: now + lingerSeconds) }
            if stopping {
                for socket in lingering { closeDescriptor(socket.fd) }
                state.withLock { $0.open -= lingering.count; $0.threadFinished = true }
                return
            }
            pollSet.removeAll(keepingCapacity: true)
            pollSet.append(pollfd(fd: wakeReadFD, events: Int16(POLLIN), revents: 0))
            for socket in lingering { pollSet.append(pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)) }
            let earliest = lingering.map(\.deadline).min() ?? .infinity
            // A failed poll (ENOMEM) is retried after the deadlines are checked below.
            let ready = (try? systemCall("poll") {
                poll(&pollSet, nfds_t(pollSet.count), SocketIO.pollTimeout(until: earliest))
            }) ?? 0
            if ready > 0 && pollSet[0].revents != 0 { drainWakeUps(&scratch) }
            let after = monotonicSeconds()
            var closed = 0
            var index = 0
            while index < lingering.count {
                let readable = ready > 0 && pollSet[index + 1].revents != 0
                if (readable && !discard(&lingering[index], &scratch)) || after >= lingering[index].deadline {
                    closeDescriptor(lingering[index].fd)
                    lingering.swapAt(index, lingering.count - 1)
                    pollSet.swapAt(index + 1, pollSet.count - 1)
                    lingering.removeLast()
                    pollSet.removeLast()
                    closed += 1
                } else {
                    index += 1
                }
            }
            if closed > 0 { state.withLock { $0.open -= closed } }
        }
    }

    /// Reads and drops what `socket` has for us; false when it is done lingering (the
    /// peer closed or reset, or sent more than `maximumDiscardedBytes`).
    private func discard(_ socket: inout Lingering, _ scratch: inout [UInt8]) -> Bool {
        let count: Int
        do {
            count = try scratch.withUnsafeMutableBytes { raw in
                try systemCall("recv") { recv(socket.fd, raw.baseAddress, raw.count, Int32(MSG_DONTWAIT)) }
            }
        } catch let error as SystemError where error.errno == .wouldBlock {
            return true
        } catch {
            return false
        }
        if count == 0 { return false }
        socket.discarded += count
        return socket.discarded < Self.maximumDiscardedBytes
    }

    private func drainWakeUps(_ scratch: inout [UInt8]) {
        // The pipe is non-blocking: read until it is empty (EAGAIN ends the loop).
        while let count = try? scratch.withUnsafeMutableBytes({ raw in
            try systemCall("read(wake pipe)") { read(wakeReadFD, raw.baseAddress, raw.count) }
        }), count > 0 {}
    }
}
