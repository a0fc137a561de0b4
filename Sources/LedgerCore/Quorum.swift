/// Quorum arithmetic, in one place: a quorum is strictly more than two thirds of the
/// total voting power (with equal power, 2f+1 of n = 3f+1). Computed in 128 bits so
/// no stake total can overflow it.
public enum Quorum {
    public static func reached(power: UInt64, total: UInt64) -> Bool { reached(power: UInt128(power), total: UInt128(total)) }

    /// Over sums of any number of u64 powers (no list of them can overflow 128 bits).
    public static func reached(power: UInt128, total: UInt128) -> Bool {
        guard total > 0, power <= total else { return false }
        return power * 3 > total * 2
    }
}
