/// Why a start-up step failed; `description` is the user's one-line message.
struct StartupError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// One step of a server's start-up together with its undo (shaped after
/// swift-service-lifecycle's `ServiceGroup`, but for threads and `sigwait`, not tasks).
///
/// Contract: `start` either succeeds or throws having left nothing behind of its own
/// (the parts started before it are the lifecycle's to stop). `stop` is called at
/// most once, only after `start` succeeded, and only after every later part has stopped.
struct LifecyclePart {
    /// How `stop` ended.
    enum StopOutcome: Equatable {
        case stopped
        /// Going on with the teardown is unsafe (e.g. a thread is still inside the store,
        /// so detaching could leave it a lock nobody owns): the remaining parts must be
        /// left exactly as a crashed server leaves them, for the next server or `dipcrm`.
        case abandonTeardown
    }

    /// For logs and for `StartFailure`.
    let name: String
    let start: () throws -> Void
    let stop: () -> StopOutcome

    init(_ name: String, start: @escaping () throws -> Void, stop: @escaping () -> StopOutcome = { .stopped }) {
        self.name = name
        self.start = start
        self.stop = stop
    }
}

/// A server's parts, started in order and stopped in reverse order by one routine,
/// whether start-up failed halfway or the server is shutting down.
///
/// Used from one thread (the launcher's); not thread-safe.
final class ServerLifecycle {
    /// Why `start` failed: the part and its error (whose description is the user's message).
    struct StartFailure: Error, CustomStringConvertible {
        let part: String
        let error: any Error
        /// Whether undoing the parts that had started was abandoned (see `StopOutcome`).
        let teardown: TeardownOutcome
        var description: String { "\(error)" }
    }

    /// How a teardown ended.
    enum TeardownOutcome: Equatable {
        case complete
        /// Part `part` said going on was unsafe; it and every earlier part were left as they were.
        case abandoned(part: String)
    }

    private let parts: [LifecyclePart]
    /// The parts started so far, in start order; emptied by the teardown.
    private var started: [LifecyclePart] = []
    private var tornDown = false

    init(_ parts: [LifecyclePart]) {
        self.parts = parts
    }

    /// The parts' names in start order.
    var partNames: [String] { parts.map(\.name) }

    /// Starts every part in order. When one throws, stops the started ones in reverse
    /// order and throws `StartFailure`. Call once.
    func start() throws(StartFailure) {
        precondition(started.isEmpty && !tornDown, "a lifecycle starts once")
        for part in parts {
            do {
                try part.start()
            } catch {
                throw StartFailure(part: part.name, error: error, teardown: stop())
            }
            started.append(part)
        }
    }

    /// Stops the started parts in reverse order, each exactly once; a second call does
    /// nothing and returns `.complete`. Stops early when a part abandons the teardown.
    @discardableResult
    func stop() -> TeardownOutcome {
        guard !tornDown else { return .complete }
        tornDown = true
        defer { started.removeAll() }
        for part in started.reversed() where part.stop() == .abandonTeardown {
            return .abandoned(part: part.name)
        }
        return .complete
    }
}
