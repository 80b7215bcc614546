@preconcurrency import Glibc
import ArgumentParser

/// `dipc-bench [load]` is the closed-loop load generator (dipc, memcached or the echo
/// floor); `dipc-bench echo-server` is that floor; `dipc-bench suite` runs the table of
/// docs/PERFORMANCE.md (dipc against memcached and the floor); `dipc-bench backends`
/// compares the storage backends through `SharedStore` (no network); `dipc-bench access`
/// measures TLS, the Unix socket and Redis with TLS.
@main
struct DIPCBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dipc-bench",
        abstract: "Benchmarks of DIPC: a load generator, the echo floor, the suite against memcached, the backends, fairness, wake-up latency, dipc on etcd against etcd.",
        // One subcommand per line (easy to merge).
        subcommands: [
            LoadCommand.self,
            EchoServerCommand.self,
            SuiteBenchmark.self,
            BackendsBenchmark.self,
            WakeupBenchmark.self,
            FairnessBenchmark.self,
            AccessBenchmark.self,
            EtcdBenchmark.self,
        ],
        defaultSubcommand: LoadCommand.self)

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
