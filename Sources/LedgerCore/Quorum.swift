/// Quorum arithmetic, in one place: a quorum is strictly more than two thirds of the
/// total voting power (with equal power, 2f+1 of n = 3f+1). Computed in 128 bits so
/// no stake total can overflow it.
public enum Quorum {
    public static func reached(power: UInt64, total: UInt64) -> Bool {
        guard total > 0 else { return false }
        return UInt128(power) * 3 > UInt128(total) * 2
    }
}
