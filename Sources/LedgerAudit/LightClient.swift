import LedgerCore
import LedgerCrypto
import LedgerProjections

/// A light client (schemas/FORMAT.md §14.4): it trusts a genesis document and nothing a
/// node says. It follows the validators' power from the genesis through the headers at
/// which it changes, checking each header's commit certificate against the power it
/// already trusts, then checks a state or event proof against a certified header.
/// The check order is CometBFT's: the cheap power sum first, signatures last.
public struct LightClient: Sendable {
    public enum Refusal: Error, Equatable, Sendable, CustomStringConvertible {
        case genesisMismatch(expected: Hash32, got: Hash32)
        case malformed(String)
        case flatChain
        case anotherChain
        case notVersion2(height: Height)
        case certificateForAnotherBlock(height: Height)
        case unknownSigner(PublicKey)
        case noQuorum(signed: UInt64, total: UInt64)
        case badSignature(PublicKey)
        case notAfterTrusted(height: Height, trusted: Height)
        case powerMismatch(height: Height)
        case wrongPath(String)
        case heightMismatch(proof: Height, header: Height)
        case streamIncomplete(String)

        public var description: String {
            switch self {
            case let .genesisMismatch(e, g): "the genesis bytes hash to \(g.hex), not the trusted \(e.hex)"
            case let .malformed(why): "malformed: \(why)"
            case .flatChain: "this chain commits its state flat (genesis before version 4): it serves no proofs"
            case .anotherChain: "the header is from another chain"
            case let .notVersion2(h): "the header of block \(h.value) is not version 2: it commits no state root"
            case let .certificateForAnotherBlock(h): "the certificate does not sign block \(h.value)'s header"
            case let .unknownSigner(k): "certificate signer \(k.short) holds no power in the trusted set (another epoch's set?)"
            case let .noQuorum(s, t): "the certificate carries \(s) of \(t) power: not more than two thirds"
            case let .badSignature(k): "signer \(k.short)'s signature does not verify"
            case let .notAfterTrusted(h, t): "block \(h.value) is not after the trusted height \(t.value)"
            case let .powerMismatch(h): "the power list does not hash to block \(h.value)'s next power hash"
            case let .wrongPath(why): "the proof does not lead to the header's root: \(why)"
            case let .heightMismatch(p, h): "the proof is for height \(p.value) but the header is block \(h.value)"
            case let .streamIncomplete(why): "the stream's events are not the proven ones: \(why)"
            }
        }
    }

    public let chain: Bytes32
    /// The power trusted to certify blocks after `trustedHeight`.
    public private(set) var power: [PublicKey: UInt64]
    public private(set) var trustedHeight: Height

    /// Trusts the genesis document `bytes` (whose hash must be `hash` when given): its
    /// validators give the first power.
    public init(genesis bytes: [UInt8], hash: Hash32? = nil) throws(Refusal) {
        let h = Blake2b.hash(bytes)
        if let hash, hash != h { throw .genesisMismatch(expected: hash, got: h) }
        let g: Genesis
        do { g = try Genesis.decode(bytes) } catch { throw .malformed("genesis: \(error)") }
        guard g.stateCommitment == StateCommitmentRule.tree else { throw .flatChain }
        chain = g.chainID.raw
        power = LedgerState.genesisPower(g)
        trustedHeight = 0
    }

    /// Checks that `certificate` signs `header` with more than two thirds of the trusted
    /// power, and returns the decoded header.
    public func certified(header: [UInt8], certificate: [UInt8]) throws(Refusal) -> BlockHeader {
        let h: BlockHeader, c: CommitCertificate
        do { h = try BlockHeader.decode(header) } catch { throw .malformed("header: \(error)") }
        do {
            var r = ByteReader(certificate)
            c = try CommitCertificate.decode(&r)
            try r.end()
        } catch { throw .malformed("certificate: \(error)") }
        guard h.chainID == chain else { throw .anotherChain }
        guard h.height > trustedHeight else { throw .notAfterTrusted(height: h.height, trusted: trustedHeight) }
        guard c.height == h.height, c.blockHash == Blake2b.hash(header) else { throw .certificateForAnotherBlock(height: h.height) }
        try checkQuorum(c.votes) { EventCrypto.verifyVote($0, chain: chain, certificate: c) }
        return h
    }

    /// Checks a stable checkpoint's certificate (`/v1/light/checkpoints`): more than two
    /// thirds of the trusted power signed its (height, block hash, state root). A
    /// checkpoint at h is signed by the power that certifies block h + 1, the power this
    /// client trusts once it has adopted header h (or a later one with the same power), so
    /// h must not be below the trusted height.
    public func verifyCheckpoint(_ bytes: [UInt8]) throws(Refusal) -> CheckpointCertificate {
        let c: CheckpointCertificate
        do { c = try CheckpointCertificate.decode(bytes: bytes) } catch { throw .malformed("checkpoint certificate: \(error)") }
        guard c.height >= trustedHeight else { throw .notAfterTrusted(height: c.height, trusted: trustedHeight) }
        let statement = c.message.statement(chain: chain)
        try checkQuorum(c.votes) { Sodium().verify($0.signature, statement, $0.key) }
        return c
    }

    /// Every signer holds trusted power, together more than two thirds of it, and every
    /// vote verifies (checked last: the costly part).
    func checkQuorum(_ votes: [CommitCertificate.Vote], verifies: (CommitCertificate.Vote) -> Bool) throws(Refusal) {
        // 128-bit sums: no list of u64 powers can overflow them.
        var total: UInt128 = 0
        for p in power.values { total += UInt128(p) }
        var signed: UInt128 = 0
        for v in votes {
            guard let p = power[v.key] else { throw .unknownSigner(v.key) }
            signed += UInt128(p)
        }
        guard total > 0, signed * 3 > total * 2 else { throw .noQuorum(signed: UInt64(clamping: signed), total: UInt64(clamping: total)) }
        for v in votes where !verifies(v) { throw .badSignature(v.key) }
    }

    /// Adopts the power that certifies the blocks after `header`'s: the header must be
    /// certified by the power trusted now and commit `next` as its next power hash.
    public mutating func adopt(header: [UInt8], certificate: [UInt8], next: [PublicKey: UInt64]) throws(Refusal) {
        let h = try certified(header: header, certificate: certificate)
        guard let post = h.post else { throw .notVersion2(height: h.height) }
        guard LedgerState.powerHash(next, Sodium()) == post.nextPowerHash else { throw .powerMismatch(height: h.height) }
        power = next
        trustedHeight = h.height
    }

    /// Checks a state proof against a certified header of its height; returns the proof.
    public func verifyState(proof: [UInt8], header: [UInt8], certificate: [UInt8]) throws(Refusal) -> StateProof {
        let h = try certified(header: header, certificate: certificate)
        guard let post = h.post else { throw .notVersion2(height: h.height) }
        let p: StateProof
        do { p = try StateProof.decode(proof, Sodium()) } catch { throw .malformed("state proof: \(error)") }
        guard p.height == h.height else { throw .heightMismatch(proof: p.height, header: h.height) }
        guard p.verify(root: post.stateRoot, Sodium()) else { throw .wrongPath("\(p.leaf) against state root \(post.stateRoot.short)") }
        return p
    }

    /// Checks that event `id` is in the block of a certified header (path: §14.2 bytes).
    public func verifyEvent(id: EventID, path: [UInt8], header: [UInt8], certificate: [UInt8]) throws(Refusal) {
        let h = try certified(header: header, certificate: certificate)
        var r = ByteReader(path)
        let index: UInt32, count: UInt32
        var siblings: [Hash32] = []
        do {
            index = try r.u32("path.index"); count = try r.u32("path.count")
            let n = try r.count("path.siblings", max: 32)
            for _ in 0 ..< n { siblings.append(try r.b32("path.sibling")) }
            try r.end()
        } catch { throw .malformed("event path: \(error)") }
        guard count == h.eventCount else { throw .wrongPath("the path counts \(count) events, the header \(h.eventCount)") }
        guard EventCrypto.eventsRoot(id: id, index: index, count: count, path: siblings) == h.eventsRoot else {
            throw .wrongPath("event \(id.short) at \(index) of \(count) against events root \(h.eventsRoot.short)")
        }
    }

    /// Checks that `ids` are all the events of stream `key` up to a certified height, in
    /// order, none left out (§7.3): the proof is the stream's leaf, and the ids must give
    /// its count and hash chain. Returns the proven count and head.
    public func verifyStream(_ key: StreamKey, ids: [EventID], proof: [UInt8], header: [UInt8], certificate: [UInt8]) throws(Refusal) -> StreamHead {
        let p = try verifyState(proof: proof, header: header, certificate: certificate)
        guard p.leaf.kind == .stream, p.leaf.id == key.bytes else { throw .wrongPath("the proof is for \(p.leaf), not stream \(key)") }
        var proven = StreamHead.empty
        if let v = p.value {
            var r = ByteReader(v)
            do {
                proven = try StreamHead.decodeEntry(&r).1
                try r.end()
            } catch { throw .malformed("stream leaf: \(error)") }
        }
        let mine = StreamHead.of(ids, Sodium())
        guard mine.count == proven.count else {
            throw .streamIncomplete("got \(ids.count) event(s), the state at height \(p.height.value) counts \(proven.count)")
        }
        guard mine.head == proven.head else {
            throw .streamIncomplete("their hash chain is not the proven head \(proven.head.short): an event is missing, foreign, altered or out of order")
        }
        return proven
    }
}
