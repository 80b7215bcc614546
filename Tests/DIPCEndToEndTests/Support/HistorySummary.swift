import DIPCTestSupport

/// What the linearizability tests print and require of a recorded history, besides
/// the checker's verdict.
extension OperationHistory {
    /// Operations by result and by kind, e.g. `empty=33 ok=1949 unknown=3 c=527 p=494 ...`.
    var resultSummary: String {
        (resultCounts.sorted { $0.key < $1.key } + kindCounts.sorted { $0.key < $1.key })
            .map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Operations answered `err internal`: the backend failed (never expected under faults).
    var backendFailures: [HistoryOperation] {
        operations.filter {
            if case .unknown(let why) = $0.result { return why.hasPrefix("internal") }
            return false
        }
    }
}
