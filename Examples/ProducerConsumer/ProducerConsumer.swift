// A producer and a consumer talking through a DIPC mailbox used as a bounded queue,
// typically through two servers that share one store:
//
//   dipc --name pc 4 4 7001 1
//   dipc --name pc 4 4 7002 1
//   dipc-producer-consumer produce --port 7001 --count 100 --rate 600 &
//   dipc-producer-consumer consume --port 7002 --count 100
//
// The producer sends COUNT items at RATE items per minute ("item I of COUNT"); the
// consumer takes COUNT items and checks that each arrived exactly once and in order
// (exit 1 otherwise). The producer waits for room when the queue is full, the consumer
// for an item when it is empty; neither holds a lock while waiting. They may run on
// different machines (start the servers with --bind 0.0.0.0 and pass --host).
@preconcurrency import Glibc
import DIPCClient

@main
enum ProducerConsumer {
    static let usage = "usage: dipc-producer-consumer produce|consume [--host H] [--port P] [--mailbox N] [--count K] [--rate PER_MINUTE] [--wait-ms MS]\n"

    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let role = arguments.first, role == "produce" || role == "consume" else { fail(usage, status: 2) }
        var options = ["--host": "127.0.0.1", "--port": "7070", "--mailbox": "0", "--count": "10", "--rate": "600", "--wait-ms": "30000"]
        var index = 1
        while index < arguments.count {
            guard options[arguments[index]] != nil, index + 1 < arguments.count else {
                fail("dipc-producer-consumer: unknown or incomplete option '\(arguments[index])'\n" + usage, status: 2)
            }
            options[arguments[index]] = arguments[index + 1]
            index += 2
        }
        guard let port = Int(options["--port"]!), let mailbox = Int(options["--mailbox"]!),
              let count = Int(options["--count"]!), count > 0, let rate = Double(options["--rate"]!), rate > 0,
              let wait = Int(options["--wait-ms"]!), (0...3_600_000).contains(wait) else {
            fail("dipc-producer-consumer: --port, --mailbox, --count, --rate (> 0) and --wait-ms (0...3600000) take numbers\n", status: 2)
        }
        do {
            let connection = try DIPCConnection(host: options["--host"]!, port: port, timeoutSeconds: 60)
            defer { try? connection.quit() }
            if role == "produce" {
                try produce(connection, mailbox: mailbox, count: count, perMinute: rate, wait: wait)
            } else {
                try consume(connection, mailbox: mailbox, count: count, wait: wait)
            }
        } catch {
            fail("dipc-producer-consumer: \(error)\n", status: 1)
        }
    }

    /// Sends "item I of COUNT" for I in 1...COUNT, the I-th at start + (I-1) * 60/rate seconds.
    static func produce(_ connection: DIPCConnection, mailbox: Int, count: Int, perMinute: Double, wait: Int) throws {
        let start = now()
        for n in 1...count {
            let due = start + Double(n - 1) * 60 / perMinute
            let early = due - now()
            if early > 0 { usleep(UInt32(early * 1_000_000)) }
            let version = try connection.push(mailbox, Array("item \(n) of \(count)".utf8), waitMilliseconds: wait)
            print("pushed item \(n) (version \(version))")
        }
        print("produced \(count) items in \(Int((now() - start) * 1000)) ms")
    }

    /// Takes COUNT items; each must be the next one ("item I of COUNT", I = 1, 2, ...).
    static func consume(_ connection: DIPCConnection, mailbox: Int, count: Int, wait: Int) throws {
        for n in 1...count {
            let message = try connection.consume(mailbox, waitMilliseconds: wait)
            let text = String(decoding: message.data, as: UTF8.self)
            guard text == "item \(n) of \(count)" else {
                fail("dipc-producer-consumer: expected \"item \(n) of \(count)\", took \"\(text)\" (lost, duplicated or out of order)\n", status: 1)
            }
            print("took item \(n) (version \(message.version))")
        }
        print("consumed \(count) items: each exactly once, in order")
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func fail(_ message: String, status: Int32) -> Never {
        fputs(message, stderr)
        exit(status)
    }
}
