import LedgerCore

/// The validators of one epoch, as consensus sees them: consensus keys and voting power.
/// Quorums count distinct signers weighted by power — never messages — and need
/// strictly more than two thirds of the total (`Quorum.reached`): with equal power and
/// n = 3f + 1 that is 2f + 1 signers, and for every other n it is still the smallest
/// count that any two quorums share an honest member in.
public struct ValidatorSet: Sendable, Equatable {
    public struct Member: Sendable, Hashable {
        public var key: PublicKey
        public var power: UInt64
        public init(key: PublicKey, power: UInt64) { self.key = key; self.power = power }
    }

    public enum PrimaryRule: Sendable, Equatable {
        /// Member (view + ⌊epoch / epochsPerTurn⌋) mod n, in key order: leadership
        /// passes to the next member every `epochsPerTurn` epochs, and at a view change.
        case roundRobin
        /// Each view's primary is drawn with probability proportional to power, from a
        /// hash of (epoch, view): deterministic, and independent from one view to the
        /// next, so a view change away from a faulty primary is unlikely to land on it again
        /// (a walk over cumulative power would give one member many consecutive views).
        case stakeWeighted
    }

    /// Sorted by key; no duplicates; every power > 0.
    public let members: [Member]
    public let totalPower: UInt64
    private let index: [PublicKey: Int]

    public enum Invalid: Error, Equatable, Sendable {
        case empty, duplicateKey(PublicKey), zeroPower(PublicKey), totalOverflows
    }

    public init(_ members: [Member]) throws(Invalid) {
        guard !members.isEmpty else { throw .empty }
        let sorted = members.sorted { $0.key < $1.key }
        var total: UInt64 = 0
        var index: [PublicKey: Int] = [:]
        for (i, m) in sorted.enumerated() {
            guard m.power > 0 else { throw .zeroPower(m.key) }
            guard index.updateValue(i, forKey: m.key) == nil else { throw .duplicateKey(m.key) }
            let (s, o) = total.addingReportingOverflow(m.power)
            guard !o else { throw .totalOverflows }
            total = s
        }
        self.members = sorted
        self.totalPower = total
        self.index = index
    }

    public var count: Int { members.count }
    /// Faulty members tolerated when power is equal: f = ⌊(n − 1) / 3⌋.
    public var faultsTolerated: Int { (members.count - 1) / 3 }

    public func power(of key: PublicKey) -> UInt64? { index[key].map { members[$0].power } }
    public func contains(_ key: PublicKey) -> Bool { index[key] != nil }

    /// The power of the distinct members among `signers`; unknown keys count nothing.
    public func power<S: Sequence>(of signers: S) -> UInt64 where S.Element == PublicKey {
        var seen = Set<PublicKey>()
        var p: UInt64 = 0
        for k in signers where seen.insert(k).inserted {
            if let i = index[k] { p &+= members[i].power }
        }
        return p
    }

    /// Strictly more than two thirds of the total power, counting each signer once.
    public func isQuorum<S: Sequence>(_ signers: S) -> Bool where S.Element == PublicKey {
        Quorum.reached(power: power(of: signers), total: totalPower)
    }

    /// More than one third: at least one honest member is among them (enough to join a view change).
    public func isWeakQuorum<S: Sequence>(_ signers: S) -> Bool where S.Element == PublicKey {
        UInt128(power(of: signers)) * 3 > UInt128(totalPower)
    }

    /// Epochs a round-robin primary leads before the next member's turn. Leadership
    /// moved on every epoch (one checkpoint interval, half a second under load), so a
    /// validator that was down came round again every n epochs while it stayed down,
    /// and every time cost the others a view timeout: three or four times in a 10 s
    /// pause on real processes (issue 16). A view change moves to the next member at
    /// once; with turns of 8 epochs, a member skipped for failing comes round again only
    /// after (n − 1) × 8 epochs.
    public static let epochsPerTurn: UInt64 = 8

    /// The primary of a view in an epoch (epoch e covers heights eK+1 … (e+1)K).
    public func primary(view: View, epoch: UInt64, rule: PrimaryRule, _ h: any Hashing) -> PublicKey {
        switch rule {
        case .roundRobin:
            return members[Int((view.value &+ epoch / Self.epochsPerTurn) % UInt64(members.count))].key
        case .stakeWeighted:
            var w = ByteWriter(capacity: 40)
            w.raw(Array("CHAOSLEDGER/PRIMARY".utf8)); w.u64(epoch); w.u64(view.value)
            var point = h.hash(w.bytes).w0 % totalPower
            for m in members {
                if point < m.power { return m.key }
                point -= m.power
            }
            preconditionFailure("point below total power always lands on a member")
        }
    }
}
