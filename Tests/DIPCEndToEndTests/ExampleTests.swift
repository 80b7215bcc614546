import Foundation
import Testing

/// The examples, run against real servers: Examples/ProducerConsumer and Examples/Chat.
@Suite("examples")
struct ExampleTests {
    @Test("producer-consumer: items produced at a set rate through server A all arrive through server B exactly once, in order", arguments: E2E.builtBackends)
    func producerConsumer(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend, mailboxKB: 1)
            let b = try scope.start(backend, mailboxKB: 1)
            let tool = try Binaries.path("dipc-producer-consumer")
            let count = 60
            // 3600 per minute: one item every ~17 ms, about a second in all.
            let consumer = try ChildProcess(tool, ["consume", "--port", "\(b.port)", "--count", "\(count)", "--mailbox", "2"], env: scope.env)
            let producer = try ChildProcess(tool, ["produce", "--port", "\(a.port)", "--count", "\(count)", "--rate", "3600", "--mailbox", "2"], env: scope.env)
            let produced = producer.wait(timeout: 30)
            let consumed = consumer.wait(timeout: 30)
            #expect(produced.status == 0 && produced.out.contains("produced \(count) items"), "\(produced)")
            #expect(consumed.status == 0 && consumed.out.hasSuffix("consumed \(count) items: each exactly once, in order\n"), "\(consumed)")
            let took = consumed.out.split(separator: "\n").filter { $0.hasPrefix("took item ") }
            #expect(took.count == count, "consumer printed \(took.count) takes")
            #expect(try b.connect().request("r 2") == "ok 0 \(2 * count)", "the queue is not empty, or a change is missing")
        }
    }

    @Test("producer-consumer: a consumer given items out of order exits 1")
    func producerConsumerDetectsDisorder() throws {
        try withServer("sysv") { server, scope in
            let c = try server.connect()
            try c.send("p 0 11\nitem 2 of 2p 0 11\nitem 1 of 2")
            #expect(try c.readLine() == "ok 1")
            #expect(try c.readLine() == "ok 2")
            let r = try runProcess(try Binaries.path("dipc-producer-consumer"), ["consume", "--port", "\(server.port)", "--count", "2", "--wait-ms", "100"], env: scope.env, timeout: 20)
            #expect(r.status == 1 && r.err.contains("expected \"item 1 of 2\""), "\(r)")
        }
    }

    @Test("chat: three people on two servers each receive every other's lines exactly once, in order; the roster empties as they leave", arguments: E2E.builtBackends)
    func chat(backend: String) throws {
        try withScope { scope in
            let a = try scope.start(backend, mailboxes: 8)
            let b = try scope.start(backend, mailboxes: 8)
            let tool = try Binaries.path("dipc-chat")
            let initialised = try runProcess(tool, ["init", "--port", "\(a.port)"], env: scope.env, timeout: 20)
            #expect(initialised.status == 0, "\(initialised)")
            let people = ["alice", "bob", "carol"]
            let lines = 5
            var children: [(name: String, process: ChildProcess)] = []
            for (i, person) in people.enumerated() {
                var script = "/await \(people.joined(separator: " "))\n"
                for n in 1...lines { script += "line \(n) from \(person)\n" }
                script += "/expect \((people.count - 1) * lines)\n/who\n"
                let port = i % 2 == 0 ? a.port : b.port
                let child = try ChildProcess(tool, ["join", "--port", "\(port)", "--name", person], env: scope.env, stdin: Array(script.utf8))
                children.append((person, child))
            }
            for (person, child) in children {
                let r = child.wait(timeout: 40)
                #expect(r.status == 0, "\(person): \(r)")
                let received = r.out.split(separator: "\n").filter { !$0.hasPrefix("* ") }.map(String.init)
                for other in people where other != person {
                    let fromOther = received.filter { $0.hasPrefix("\(other): ") }
                    let expected = (1...lines).map { "\(other): line \($0) from \(other)" }
                    #expect(fromOther == expected, "\(person) got from \(other): \(fromOther)")
                }
                #expect(received.count == (people.count - 1) * lines, "\(person) received \(received.count) lines: \(received)")
                #expect(!received.contains { $0.hasPrefix("\(person): ") }, "\(person) received its own line")
            }
            let (roster, _) = try a.connect().read(0)
            #expect(roster.isEmpty, "roster after everyone left: \(String(decoding: roster, as: UTF8.self).debugDescription)")
        }
    }
}
