// A producer and a consumer talking through a DIPC mailbox used as a queue.
//
//   dipc 4 4 7070 1
//   dipc-producer-consumer produce --port 7070 --count 5 &
//   dipc-producer-consumer consume --port 7070 --count 5
//
// They may run on different machines (start the server with --bind 0.0.0.0 and
// pass --host). The producer waits for room when the queue is full, the consumer
// waits for a message when it is empty; neither holds a lock while waiting.
@preconcurrency import Glibc
import DIPCClient

@main
enum ProducerConsumer {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let role = arguments.first, role == "produce" || role == "consume" else {
            fputs("usage: dipc-producer-consumer produce|consume [--host H] [--port P] [--mailbox N] [--count K]\n", stderr)
            exit(2)
        }
        var options = ["--host": "127.0.0.1", "--port": "7070", "--mailbox": "0", "--count": "10"]
        var index = 1
        while index + 1 < arguments.count {
            options[arguments[index]] = arguments[index + 1]
            index += 2
        }
        guard let port = Int(options["--port"]!), let mailbox = Int(options["--mailbox"]!),
              let count = Int(options["--count"]!) else {
            fputs("dipc-producer-consumer: --port, --mailbox and --count take numbers\n", stderr)
            exit(2)
        }
        do {
            let connection = try DIPCConnection(host: options["--host"]!, port: port, timeoutSeconds: 60)
            defer { try? connection.quit() }
            for n in 1...count {
                if role == "produce" {
                    let text = "message \(n) from pid \(getpid())"
                    let version = try connection.push(mailbox, Array(text.utf8), waitMilliseconds: 30_000)
                    print("pushed \"\(text)\" (version \(version))")
                } else {
                    let message = try connection.consume(mailbox, waitMilliseconds: 30_000)
                    print("took \"\(String(decoding: message.data, as: UTF8.self))\" (version \(message.version))")
                }
            }
        } catch {
            fputs("dipc-producer-consumer: \(error)\n", stderr)
            exit(1)
        }
    }
}
