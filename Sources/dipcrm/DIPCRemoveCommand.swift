@preconcurrency import Glibc
import ArgumentParser
import DIPCBackends
import DIPCServer

@main
struct DIPCRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipcrm",
        abstract: "Stop the dipc server on a port and remove its shared memory and runtime record.",
        discussion: """
            If the server had crashed, removes what it left behind. A TDB file is never deleted. \
            Exit status: 0 when done, 1 when there is no dipc server on the port (or it cannot be \
            stopped), 2 on bad usage. See dipcrm(1).
            """)

    @Argument(help: "The server's TCP port.") var port: String

    func validate() throws {
        _ = try parsedPort()
    }

    private func parsedPort() throws -> Int {
        guard !port.isEmpty, port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int(port),
              (1...65535).contains(value) else {
            throw ValidationError("<port> must be a number between 1 and 65535, not \"\(port)\"")
        }
        return value
    }

    func run() throws {
        let remover = ServerRemover(runtime: .fromEnvironment(), port: try parsedPort()) { record in
            guard let (store, slot) = BackendRegistry.store(fromRecord: record.fields) else {
                return "its record does not name a store; nothing else removed"
            }
            return try store.cleanUpAfterCrash(slot: slot)
        }
        let outcome = remover.remove()
        for line in outcome.messages { print(line) }
        if let failure = outcome.failure {
            fputs("dipcrm: \(failure)\n", stderr)
            Glibc.exit(1)
        }
    }

    /// Parses and runs; a usage error is one line on stderr and exit status 2.
    static func main() {
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fputs("dipcrm: \(message)\n", stderr)
            Glibc.exit(2)
        }
    }
}
