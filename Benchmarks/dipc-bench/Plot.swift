@preconcurrency import Glibc

/// throughput.png (ops/s) or p99.png (p99 latency, log scale) against connections, one
/// panel per value size and read ratio, one line per server. Written as data files plus
/// a gnuplot script, then run with gnuplot when it is installed.
enum Plot {
    enum Metric {
        case throughput, p99
        var name: String { self == .throughput ? "throughput" : "p99" }
        var axis: String { self == .throughput ? "ops/s (median)" : "p99 µs (median)" }
        func value(_ m: Median) -> Double { self == .throughput ? m.opsPerSecond : m.p99 }
    }

    static func write(out: String, cells: [SuiteBenchmark.Cell], labels: [String], medians: [SuiteBenchmark.Cell: [String: Median]],
                      metric: Metric = .throughput) {
        var panels: [(size: Int, ratio: Double)] = []
        for cell in cells where !panels.contains(where: { $0.size == cell.valueSize && $0.ratio == cell.readRatio }) {
            panels.append((cell.valueSize, cell.readRatio))
        }
        var script = """
            set terminal pngcairo size \(560 * min(panels.count, 2)),\(420 * ((panels.count + 1) / 2)) font ",10"
            set output '\(out)/\(metric.name).png'
            set multiplot layout \((panels.count + 1) / 2),\(min(panels.count, 2))
            set logscale x 2
            set xlabel 'connections'
            set ylabel '\(metric.axis)'
            set key top left
            set grid
            \(metric == .throughput ? "set yrange [0:*]" : "set logscale y 10")

            """
        for (index, panel) in panels.enumerated() {
            let data = "\(out)/\(metric.name)-\(panel.size)-\(Int(panel.ratio * 100)).dat"
            var text = "# connections " + labels.joined(separator: " ") + "\n"
            for cell in cells where cell.valueSize == panel.size && cell.readRatio == panel.ratio {
                text += "\(cell.connections) " + labels.map { medians[cell]?[$0].map { String(format1: metric.value($0), digits: 0) } ?? "?" }
                    .joined(separator: " ") + "\n"
            }
            if let file = fopen(data, "w") {
                fputs(text, file)
                fclose(file)
            }
            script += "set title '\(sizeLabel(panel.size)) values, \(Int(panel.ratio * 100)) % reads'\n"
            script += "plot " + labels.enumerated().map { i, label in
                "'\(data)' using 1:\(i + 2) with linespoints title '\(label)'"
            }.joined(separator: ", ") + "\n"
            _ = index
        }
        script += "unset multiplot\n"
        let scriptPath = "\(out)/\(metric.name).gp"
        guard let file = fopen(scriptPath, "w") else { return }
        fputs(script, file)
        fclose(file)
        guard let gnuplot = Processes.find("gnuplot") else {
            print("note: gnuplot not found; \(scriptPath) is ready for it")
            return
        }
        if let result = try? Processes.run(gnuplot, [scriptPath], scratch: out), result.status != 0 {
            print("note: gnuplot failed: \(result.stderr.trimmingCharacters(in: "\n "))")
        }
    }
}
