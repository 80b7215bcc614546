/// The starvation-free readers-writer policy that wraps every backend.
public enum CoordinatorPolicy: String, CaseIterable, Sendable {
    /// Task-fair: accesses are admitted in arrival order, consecutive readers together.
    case fifo
    /// Phase-fair (Brandenburg and Anderson): waiting readers and writers alternate phases.
    case phaseFair = "phase-fair"

    /// The value stored in a shared store header.
    public var storedCode: UInt32 {
        switch self {
        case .fifo: return 1
        case .phaseFair: return 2
        }
    }

    /// The policy a store header's code names, if any.
    public init?(storedCode: UInt32) {
        switch storedCode {
        case 1: self = .fifo
        case 2: self = .phaseFair
        default: return nil
        }
    }
}
