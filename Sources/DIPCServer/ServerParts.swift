import DIPCCore
import DIPCRuntime
import Glibc
import Logging

/// The parts of a running `dipc`, in start order, for `ServerLifecycle` (which stops
/// them in reverse order, on a failed start-up and on shutdown alike):
///
/// 1. stop signals: blocked before any thread starts.
/// 1a. access: the auth file, TLS files and protected mode checked (`ServerAccess`),
///    before anything is created.
/// 2. TCP listener: bound first, so that "port in use" leaves nothing behind.
/// 2a. Unix listener (`--unix`): appended to `listeners`; stop removes its file. The
///    accept loops part serves every listener.
/// 3. runtime record: a crashed server's record set aside, and a first record written
///    before the store exists, so that `dipcrm` can clean up if this process dies
///    creating it. Stop: the record is withdrawn.
/// 4. store: opened (created or attached). Stop: detached.
/// 5. serving record: the record rewritten with the store's slot and IDs.
/// 6. store gate: the only way connections enter the store. Stop: closed, and if a
///    thread is still inside after the grace period, the teardown is abandoned (no
///    detach, record kept) as a crashed server would leave it.
/// 7. accept loops: last, so that no connection is admitted before start-up is complete
///    and none uses a store that a failed start-up detaches. Stop: the server stops
///    accepting, answers idle connections `err shutdown`, and waits out the grace period.
///
/// The store is used here and in `Server` only; this class touches only its
/// description (the runtime record's fields) and `detach`.
final class ServerParts {
    let request: LaunchRequest
    let records: RecordKeeper
    private let logger: Logger
    private let openStore: () throws -> any MailboxStore
    let signals = StopSignals()
    /// Bound sockets, in part order; the accept loops part serves them all.
    private(set) var listeners: [ListeningSocket] = []
    private var store: (any MailboxStore)?
    private let storeGate = StoreGate()
    private var server: Server?
    /// What the access part loaded (token, TLS context).
    private var access = ServerAccess.open
    private var unixSocket: UnixListeningSocket?

    init(request: LaunchRequest, records: RecordKeeper, logger: Logger, openStore: @escaping () throws -> any MailboxStore) {
        self.request = request
        self.records = records
        self.logger = logger
        self.openStore = openStore
    }

    /// The parts in start order (see the type's documentation).
    var all: [LifecyclePart] {
        [stopSignals, accessChecks, tcpListener, unixListener, runtimeRecord, sharedStore, servingRecord, gate, acceptLoops]
    }

    private var configuration: ServerConfiguration { request.configuration }
    private var timeouts: ServerTimeouts { request.configuration.timeouts }

    private var stopSignals: LifecyclePart {
        LifecyclePart("stop signals", start: { [signals] in signals.block() })
    }

    private var tcpListener: LifecyclePart {
        LifecyclePart("tcp listener", start: { [self] in
            listeners.append(try ListeningSocket(address: configuration.bindAddress, port: configuration.port))
        }, stop: { [self] in
            closeDescriptor(listeners.removeFirst().fd)
            return .stopped
        })
    }

    private var accessChecks: LifecyclePart {
        LifecyclePart("access", start: { [self] in
            access = try ServerAccess.load(configuration.access, bindAddress: configuration.bindAddress)
        }, stop: { [self] in
            access = .open
            return .stopped
        })
    }

    private var unixListener: LifecyclePart {
        LifecyclePart("unix listener", start: { [self] in
            guard let path = configuration.access.unixSocketPath else { return }
            let socket = try UnixListeningSocket(path: path)
            unixSocket = socket
            listeners.append(socket.socket)
        }, stop: { [self] in
            if let unixSocket {
                listeners.removeAll { $0.fd == unixSocket.socket.fd }
                unixSocket.close()
            }
            unixSocket = nil
            return .stopped
        })
    }

    private var runtimeRecord: LifecyclePart {
        LifecyclePart("runtime record", start: { [self] in
            try records.claim(writing: record(store: nil))
        }, stop: { [records] in
            records.withdraw()
            return .stopped
        })
    }

    private var sharedStore: LifecyclePart {
        LifecyclePart("store", start: { [self] in
            do {
                store = try openStore()
            } catch {
                throw StartupError("cannot open store \"\(request.storeName)\": \(error)")
            }
        }, stop: { [self] in
            do {
                let removed = try store?.detach() ?? false
                logger.info(removed ? "removed the store (last server)" : "detached; other servers still share the store")
            } catch {
                logger.error("detaching the store failed", metadata: ["error": "\(error)"])
            }
            store = nil
            return .stopped
        })
    }

    /// Its stop is nothing: the runtime record part removes the file.
    private var servingRecord: LifecyclePart {
        LifecyclePart("serving record", start: { [self] in
            try records.publish(record(store: store), logger: logger)
        })
    }

    private var gate: LifecyclePart {
        LifecyclePart("store gate", start: {}, stop: { [self] in
            guard storeGate.close(timeoutSeconds: timeouts.storeCloseSeconds) else {
                // A thread is still inside the store (waiting for a lock a stopped peer holds):
                // detaching now could leave it a lock nobody owns. Exit as a crashed server
                // does instead; the slot is reclaimed by the next server or by dipcrm, which
                // the runtime record left in place tells to clean up.
                logger.error("a connection is still inside the store after the grace period; exiting without detaching")
                return .abandonTeardown
            }
            return .stopped
        })
    }

    private var acceptLoops: LifecyclePart {
        LifecyclePart("accept loops", start: { [self] in
            guard let store else { preconditionFailure("the store part starts before the accept loops") }
            let server = try Server(configuration: configuration, listeners: listeners, store: store,
                                    storeGate: storeGate, access: access, logger: logger)
            try server.start()
            self.server = server
        }, stop: { [self] in
            server?.stop()
            server = nil
            return .stopped
        })
    }

    /// The runtime record; without `store` (not opened yet) it lacks the slot and IPC ids.
    /// Where the store and the request both name a field, the store's value is kept.
    private func record(store: (any MailboxStore)?) -> RuntimeRecord {
        let me = ProcessIdentity.current()
        let storeFields = store?.describe().recordFields ?? []
        let requestFields = request.recordFields.filter { field in !storeFields.contains { $0.0 == field.0 } }
        return RuntimeRecord(fields: [
            ("pid", String(me.pid)), ("start_time", String(me.startTime)), ("port", String(configuration.port)),
            ("bind", configuration.bindAddress), ("backend", configuration.backendName), ("name", request.storeName),
            ("mailboxes", String(request.geometry.mailboxes)), ("mailbox_size", String(request.geometry.mailboxSize)),
            ("packet_size", String(configuration.packetSize)), ("coordinator", request.policy.rawValue),
        ] + unixField + storeFields + requestFields)
    }

    /// `unix=PATH` while a Unix socket is served, so that `dipcrm` removes it after a crash.
    private var unixField: [(String, String)] {
        configuration.access.unixSocketPath.map { [("unix", $0)] } ?? []
    }
}
