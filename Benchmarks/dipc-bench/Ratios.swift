/// The ratios issue 17 sets its goals in, one row per cell of the suite, from the
/// cell's medians: throughput of sysv over memcached, Redis and the floor, tdb over
/// sysv, p99 of sysv over the floor's and memcached's, tdb's p99 over sysv's, and
/// server CPU per request of sysv and tdb over memcached's. A ratio whose servers did
/// not run shows "–".
enum Ratios {
    static let header = ["conns", "value", "reads", "sysv/memcached", "sysv/Redis", "sysv/floor", "tdb/sysv",
                         "p99 sysv/floor (≤ 1.2)", "p99 sysv/memcached", "p99 tdb/sysv (≤ 1.5)",
                         "CPU sysv/memcached (≤ 1)", "CPU tdb/memcached"]

    /// The Markdown table (with its title), also written to `csvPath`.
    static func table(cells: [SuiteBenchmark.Cell], medians: [SuiteBenchmark.Cell: [String: Median]], csvPath: String) throws -> String {
        let csv = try CSVFile(path: csvPath, header: "connections,value_bytes,read_ratio,sysv_over_memcached,sysv_over_redis,"
                              + "sysv_over_floor,tdb_over_sysv,p99_sysv_over_floor,p99_sysv_over_memcached,p99_tdb_over_sysv,"
                              + "cpu_sysv_over_memcached,cpu_tdb_over_memcached")
        defer { csv.close() }
        var rows: [[String]] = []
        for cell in cells {
            guard let m = medians[cell] else { continue }
            func ops(_ a: String, _ b: String) -> Double? { guard let x = m[a], let y = m[b] else { return nil }; return x.opsPerSecond / y.opsPerSecond }
            func p99(_ a: String, _ b: String) -> Double? { guard let x = m[a], let y = m[b] else { return nil }; return x.p99 / y.p99 }
            func cpu(_ a: String, _ b: String) -> Double? { guard let x = m[a]?.cpu, let y = m[b]?.cpu else { return nil }; return x / y }
            let values = [ops("sysv", "memcached"), ops("sysv", "redis"), ops("sysv", "floor"), ops("tdb", "sysv"),
                          p99("sysv", "floor"), p99("sysv", "memcached"), p99("tdb", "sysv"),
                          cpu("sysv", "memcached"), cpu("tdb", "memcached")]
            rows.append([String(cell.connections), sizeLabel(cell.valueSize), "\(Int(cell.readRatio * 100)) %"]
                        + values.map { $0.map { String(format1: $0, digits: 2) } ?? "–" })
            csv.write([String(cell.connections), String(cell.valueSize), String(cell.readRatio)]
                      + values.map { $0.map { String(format1: $0, digits: 3) } ?? "" })
        }
        return "Ratios of the medians above (issue 17's goals in brackets: p99 sysv/floor ≤ 1.2, CPU sysv/memcached ≤ 1, "
            + "tdb/sysv ≥ 0.9 at 90 % reads with p99 tdb/sysv ≤ 1.5):\n\n"
            + renderTable(header, rows, rightAligned: Set(0..<header.count))
    }
}
