@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench backends` compares the storage backends through `SharedStore` (the
/// coordinator included, no network); `dipc-bench network` compares a real `dipc`
/// server with memcached over TCP. Both print markdown tables and the machine.
@main
struct DIPCBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc-bench",
        abstract: "Benchmarks of DIPC: backends side by side, and dipc against memcached over TCP.",
        subcommands: [BackendsBenchmark.self, NetworkBenchmark.self, FairnessBenchmark.self])

    static func main() {
        signal(SIGPIPE, SIG_IGN)
        setvbuf(stdout, nil, _IOLBF, 0)
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            if error is BenchError {
                fputs("dipc-bench: \(error)\n", stderr)
                Glibc.exit(1)
            }
            fputs("dipc-bench: \(message(for: error))\n", stderr)
            Glibc.exit(code == .validationFailure ? 2 : 1)
        }
    }
}

/// A benchmark that could not run; the message says why.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
