/// SplitMix64 (Steele, Lea and Flood): a small, fast, seeded generator, so that a test,
/// a storm or a soak run can be replayed from its seed. Not for secrets.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator seeded from the system's random source: use it instead of passing a
    /// `SystemRandomNumberGenerator` by `inout`. That type has size zero, and
    /// ThreadSanitizer's instrumentation of an `inout` access to a zero-sized value
    /// crashes (SEGV in `__tsan::ExternalAccess`, Swift 6.3) or reports every such
    /// access as a race on one shared address.
    public init() { state = UInt64.random(in: .min ... .max) }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
