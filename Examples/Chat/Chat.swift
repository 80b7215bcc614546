// A terminal chat for several people through DIPC mailboxes:
//
//   dipc --name chat 16 4 7001 1          # one or more servers sharing the store
//   dipc-chat init --port 7001             # once: an empty roster
//   dipc-chat join --port 7001 --name alice
//   dipc-chat join --port 7002 --name bob  # through another server, if you like
//
// Mailbox 0 is the roster (a register: one line "NAME INBOX" per participant),
// mailbox 1 the roster's lock (a queue holding one token: whoever takes it may change
// the roster, then pushes it back), mailboxes 2... the participants' inboxes (queues).
// A line typed is pushed to every other participant's inbox as "NAME: TEXT"; a
// receiving thread takes from one's own inbox and prints what arrives. So nothing is
// lost or shown twice: each message is one push and one take.
//
// Commands: /who (the roster), /await NAME... (wait until they are in), /expect N (wait
// until N messages have arrived; for scripts), /quit. End of input leaves the room.
@preconcurrency import Glibc
import DIPCClient

@main
enum Chat {
    static let rosterMailbox = 0
    static let lockMailbox = 1
    static let firstInbox = 2
    static let waitMilliseconds = 30_000
    static let usage = "usage: dipc-chat init|join [--host H] [--port P] [--name NAME]\n"

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let role = arguments.first, role == "init" || role == "join" else { fail(usage, status: 2) }
        var options = ["--host": "127.0.0.1", "--port": "7070", "--name": ""]
        var index = 1
        while index < arguments.count {
            guard options[arguments[index]] != nil, index + 1 < arguments.count else {
                fail("dipc-chat: unknown or incomplete option '\(arguments[index])'\n" + usage, status: 2)
            }
            options[arguments[index]] = arguments[index + 1]
            index += 2
        }
        let host = options["--host"]!, name = options["--name"]!
        guard let port = Int(options["--port"]!) else { fail("dipc-chat: --port takes a number\n", status: 2) }
        do {
            if role == "init" {
                let connection = try DIPCConnection(host: host, port: port)
                try connection.write(rosterMailbox, [])
                try connection.write(lockMailbox, Array("token".utf8))  // `w` leaves exactly one token
                say("* the room is ready")
                return
            }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
                fail("dipc-chat: --name takes a word of letters, digits, '_' and '-'\n", status: 2)
            }
            try Participant(host: host, port: port, name: name).run()
        } catch {
            fail("dipc-chat: \(error)\n", status: 1)
        }
    }

    /// One line to stdout in a single write, so lines from the two threads never mix.
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(STDOUT_FILENO, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    static func fail(_ message: String, status: Int32) -> Never {
        fputs(message, stderr)
        exit(status)
    }

    /// Starts `receiver.run()` on its own thread (from a static function: Swift 6 thread rule).
    static func startThread(_ receiver: Receiver) -> pthread_t {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(receiver).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<Receiver>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        if rc != 0 { fail("dipc-chat: pthread_create failed (\(rc))\n", status: 1) }
        return thread
    }
}

/// The roster: "NAME INBOX" lines.
struct Roster {
    var entries: [(name: String, inbox: Int)]

    init(_ data: [UInt8]) {
        entries = String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 2, let inbox = Int(f[1]) else { return nil }
            return (String(f[0]), inbox)
        }
    }

    var encoded: [UInt8] { Array(entries.map { "\($0.name) \($0.inbox)\n" }.joined().utf8) }
    var names: [String] { entries.map(\.name) }
}

/// Takes messages from one inbox and prints them, until told to stop.
final class Receiver: @unchecked Sendable {
    let connection: DIPCConnection
    let inbox: Int
    private var stopRequested = false
    private var received = 0
    private var failure: String?
    private var mutex = pthread_mutex_t()

    init(connection: DIPCConnection, inbox: Int) {
        self.connection = connection
        self.inbox = inbox
        pthread_mutex_init(&mutex, nil)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    var receivedCount: Int { locked { received } }
    var problem: String? { locked { failure } }
    func stop() { locked { stopRequested = true } }

    func run() {
        while !locked({ stopRequested }) {
            do {
                let message = try connection.consume(inbox, waitMilliseconds: 200)
                Chat.say(String(decoding: message.data, as: UTF8.self))
                locked { received += 1 }
            } catch DIPCClientError.server(code: "empty", _) {
                continue
            } catch {
                locked { failure = "\(error)" }
                return
            }
        }
    }
}

/// A person in the room: joins, sends what is typed, receives on a thread, leaves.
final class Participant {
    let name: String
    let connection: DIPCConnection
    let receiving: DIPCConnection
    let mailboxes: Int

    init(host: String, port: Int, name: String) throws {
        self.name = name
        connection = try DIPCConnection(host: host, port: port, timeoutSeconds: 60)
        receiving = try DIPCConnection(host: host, port: port, timeoutSeconds: 60)
        mailboxes = Int(try connection.info()["mailboxes"] ?? "") ?? 0
    }

    /// Runs `body` on the roster while holding its lock (the token taken from the lock mailbox).
    func changeRoster(_ body: (inout Roster) throws -> Void) throws {
        _ = try connection.consume(Chat.lockMailbox, waitMilliseconds: Chat.waitMilliseconds)
        defer { _ = try? connection.push(Chat.lockMailbox, Array("token".utf8), waitMilliseconds: Chat.waitMilliseconds) }
        var roster = Roster(try connection.read(Chat.rosterMailbox).data)
        try body(&roster)
        try connection.write(Chat.rosterMailbox, roster.encoded)
    }

    func roster() throws -> Roster { Roster(try connection.read(Chat.rosterMailbox).data) }

    func run() throws {
        var inbox = 0
        try changeRoster { roster in
            guard !roster.names.contains(name) else { throw ChatError("\(name) is already in the room") }
            let used = Set(roster.entries.map(\.inbox))
            guard let free = (Chat.firstInbox..<mailboxes).first(where: { !used.contains($0) }) else {
                throw ChatError("the room is full (\(mailboxes - Chat.firstInbox) inboxes)")
            }
            inbox = free
            // A previous occupant may have left messages behind.
            while (try? connection.consume(free)) != nil {}
            roster.entries.append((name, free))
        }
        Chat.say("* \(name) joined (inbox \(inbox)); in the room: \(try roster().names.joined(separator: ", "))")
        let receiver = Receiver(connection: receiving, inbox: inbox)
        let thread = Chat.startThread(receiver)
        defer {
            // Out of the roster first, so that nobody sends to an inbox no longer read.
            try? changeRoster { $0.entries.removeAll { $0.name == name } }
            receiver.stop()
            pthread_join(thread, nil)
            Chat.say("* \(name) left")
        }
        while let line = readLine(strippingNewline: true) {
            if let problem = receiver.problem { throw ChatError("receiving: \(problem)") }
            let words = line.split(separator: " ").map(String.init)
            switch words.first {
            case "/quit":
                return
            case "/who":
                Chat.say("* in the room: \(try roster().names.joined(separator: ", "))")
            case "/await":
                try waitUntil("\(words.dropFirst()) to join") { Set(words.dropFirst()).isSubset(of: try roster().names) }
            case "/expect":
                let count = Int(words.dropFirst().first ?? "") ?? 0
                try waitUntil("\(count) messages") { receiver.receivedCount >= count }
            default:
                guard !line.isEmpty else { continue }
                let text = Array("\(name): \(line)".utf8)
                for other in try roster().entries where other.name != name {
                    try connection.push(other.inbox, text, waitMilliseconds: Chat.waitMilliseconds)
                }
            }
        }
    }

    /// Polls `condition` every 20 ms for at most 30 s.
    func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<1500 {
            if try condition() { return }
            usleep(20_000)
        }
        throw ChatError("gave up waiting for \(what)")
    }
}

struct ChatError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
