/// SplitMix64: a tiny, seeded generator. Workloads are deterministic given their seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// A value in 0..<n (n > 0).
    public mutating func below(_ n: UInt64) -> UInt64 { next() % n }
    public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// True with probability `p` (0...1).
    public mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    public mutating func range(_ lo: UInt64, _ hi: UInt64) -> UInt64 { lo + next() % (hi - lo + 1) }
}
