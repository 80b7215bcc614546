import DIPCCore
import Glibc
import Synchronization

/// The plain (TCP or Unix) connections of a server whose threads wait for their next
/// request in one blocking `recv`, instead of a `poll` on the socket and the stop pipe
/// followed by a `recv`: one system call fewer per request (docs/PERFORMANCE.md).
///
/// Only an *idle* connection (no request partly received) waits this way, without a
/// time limit, as it would in `poll`; a request in flight still waits in `poll`, under
/// `--io-timeout` and the stop's grace period. A stop (`wakeForStop`) shuts down the
/// reading side of exactly the sockets whose thread is in (or entering) that `recv`,
/// which then returns 0 and reports `.stopping`; a connection not waiting then finds
/// out on its next idle wait. A socket is registered while its descriptor is open, and
/// unregistered before it is closed, so a stop never touches a reused descriptor.
final class IdleReceivers: Sendable {
    private struct State {
        var stopping = false
        var members: [ObjectIdentifier: IdleReceiver] = [:]
    }

    private let state = Mutex(State())

    /// Registers `fd` (open until `unregister`); once a stop has begun, the receiver
    /// reports `.stopping` at once.
    func register(_ fd: Int32) -> IdleReceiver {
        let receiver = IdleReceiver(fd: fd)
        let stopping = state.withLock { state -> Bool in
            state.members[ObjectIdentifier(receiver)] = receiver
            return state.stopping
        }
        if stopping { receiver.wakeForStop() }
        return receiver
    }

    /// Forgets `receiver`: call before its descriptor is closed.
    func unregister(_ receiver: IdleReceiver) {
        _ = state.withLock { $0.members.removeValue(forKey: ObjectIdentifier(receiver)) }
    }

    /// Wakes every connection waiting idle, and makes later idle waits end at once.
    func wakeForStop() {
        state.withLock { state in
            state.stopping = true
            for receiver in state.members.values { receiver.wakeForStop() }
        }
    }
}

/// One connection's idle wait: see `IdleReceivers`. Used by the connection's thread
/// (`receive`) and by a stopping server (`wakeForStop`).
final class IdleReceiver: Sendable {
    let fd: Int32

    private struct State {
        /// The connection's thread is in (or about to enter) the blocking `recv`.
        var waiting = false
        var stopping = false
        /// The reading side was shut down to end a wait.
        var readSideShutDown = false
    }

    private let state = Mutex(State())

    fileprivate init(fd: Int32) { self.fd = fd }

    enum Outcome: Equatable {
        case received(Int)
        /// The peer closed or reset the connection.
        case peerGone
        /// The server is stopping: no request is in flight.
        case stopping
    }

    /// Blocks until bytes arrive (up to `buffer.count`), the peer is gone, or a stop
    /// begins.
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Outcome {
        let stopping = state.withLock { state -> Bool in
            if state.stopping { return true }
            state.waiting = true
            return false
        }
        if stopping { return .stopping }
        let count = try? systemCall("recv") { recv(fd, buffer.baseAddress, buffer.count, 0) }
        let shutDown = state.withLock { state -> Bool in
            state.waiting = false
            return state.readSideShutDown
        }
        switch count {
        case .some(let count) where count > 0: return .received(count)
        case .some: return shutDown ? .stopping : .peerGone  // 0: our shutdown or the peer's FIN
        case .none: return .peerGone  // reset: the peer is gone
        }
    }

    /// Whether a stop shut down the reading side: the socket cannot wait for the rest
    /// of a request any more (`recv` returns 0 at once).
    var readSideShutDown: Bool { state.withLock { $0.readSideShutDown } }

    fileprivate func wakeForStop() {
        state.withLock { state in
            state.stopping = true
            guard state.waiting, !state.readSideShutDown else { return }
            state.readSideShutDown = true
            ignoringFailure("a socket the peer already closed needs no waking: its recv returns anyway") {
                shutdown(fd, Int32(SHUT_RD))
            }
        }
    }
}
