@preconcurrency import Glibc
import ArgumentParser
import DIPCClient
import DIPCRuntime

/// `ls`: the servers of this machine's runtime directory, like `ipcs` for DIPC.
struct ListCommand: ClientSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the dipc servers recorded in the runtime directory ($DIPC_RUNTIME_DIR).",
        discussion: """
            One line per server: port, pid, state (running, or dead: crashed or killed, clean up \\
            with 'dipcrm PORT'), backend, store name, mailboxes, mailbox size and packet size in \\
            bytes, clients connected (asked with 's'; '-' when it cannot be asked), uptime, and \\
            when an etcd server is listed, the etcd endpoints its store lives on ('-' for the \\
            others). --host and --port are not used. With --json: an array of objects, with also \\
            the coordinator and where the store is (shm_id, shm_name, db, or etcd: the endpoints).
            """)
    @ParentCommand var tool: DIPCClientTool

    func run() throws {
        let directory = RuntimeDirectory.fromEnvironment()
        let servers = directory.runningServers()
        let rows = servers.map { server in (server, server.state == .running ? Self.clients(of: server) : nil) }
        if tool.json {
            try printLine(JSONValue.array(rows.map { Self.json($0.0, clients: $0.1) }).text)
            return
        }
        guard !rows.isEmpty else {
            try printLine("no dipc servers recorded in \(directory.path)")
            return
        }
        // The endpoints column only when a store lives in etcd.
        let showsEndpoints = servers.contains { Self.endpoints(of: $0) != nil }
        let header = ["PORT", "PID", "STATE", "BACKEND", "NAME", "MAILBOXES", "SIZE", "PACKET", "CLIENTS", "UPTIME"]
            + (showsEndpoints ? ["ENDPOINTS"] : [])
        let table = [header] + rows.map { server, clients in
            [
                "\(server.port)", server.pid.map(String.init) ?? "-", server.state.rawValue, server.backend,
                server.name, Self.text(server.mailboxes), Self.text(server.mailboxSize), Self.text(server.packetSize),
                Self.text(clients), server.uptimeSeconds.map(Self.duration) ?? "-",
            ] + (showsEndpoints ? [Self.endpoints(of: server) ?? "-"] : [])
        }
        let widths = header.indices.map { column in table.map { $0[column].count }.max() ?? 0 }
        for row in table {
            let cells = row.indices.map { column in
                column == row.count - 1 ? row[column] : row[column] + String(repeating: " ", count: widths[column] - row[column].count)
            }
            try printLine(cells.joined(separator: "  "))
        }
    }

    /// Clients connected to a running server, not counting the asking connection; nil
    /// when the server cannot be asked within a second.
    static func clients(of server: RunningServer) -> Int? {
        let host = ["0.0.0.0", ""].contains(server.bind) ? "127.0.0.1" : server.bind == "::" ? "::1" : server.bind
        guard let connection = try? DIPCConnection(host: host, port: server.port, timeoutSeconds: 1),
            let connections = (try? connection.stats())?["connections"].flatMap({ Int($0) })
        else { return nil }
        try? connection.quit()
        return max(0, connections - 1)
    }

    static func json(_ server: RunningServer, clients: Int?) -> JSONValue {
        func number(_ value: Int?) -> JSONValue { value.map { .int($0) } ?? .null }
        return .object([
            ("port", .int(server.port)), ("pid", number(server.pid.map(Int.init))), ("state", .string(server.state.rawValue)),
            ("backend", .string(server.backend)), ("name", .string(server.name)), ("bind", .string(server.bind)),
            ("mailboxes", number(server.mailboxes)), ("mailbox_size", number(server.mailboxSize)),
            ("packet_size", number(server.packetSize)), ("clients", number(clients)),
            ("uptime_s", number(server.uptimeSeconds)),
            ("coordinator", server.record["coordinator"].map { .string($0) } ?? .null),
        ] + ["shm_id", "shm_name", "db", "etcd"].compactMap { key in
            server.record[key].flatMap { $0.isEmpty ? nil : (key, JSONValue.numberOrString($0)) }
        })
    }

    /// The etcd endpoints (`URL,URL,...`) a server's runtime record names; nil for a
    /// store that does not live in etcd.
    static func endpoints(of server: RunningServer) -> String? {
        server.record["etcd"].flatMap { $0.isEmpty ? nil : $0 }
    }

    static func text(_ value: Int?) -> String { value.map(String.init) ?? "-" }

    /// `42s`, `5m03s`, `2h05m`, `3d04h`.
    static func duration(_ seconds: Int) -> String {
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3600: return "\(seconds / 60)m\(two(seconds % 60))s"
        case ..<86400: return "\(seconds / 3600)h\(two(seconds % 3600 / 60))m"
        default: return "\(seconds / 86400)d\(two(seconds % 86400 / 3600))h"
        }
    }
}
