import Foundation
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// Why a bundle was refused: it is not one, it was cut short or altered, or it holds a
/// history that does not verify.
public enum BundleError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(path: String, message: String)
    case tooLarge(bytes: Int, max: Int)
    case notABundle
    case unsupportedVersion(UInt16)
    /// Fewer bytes than the header declares.
    case truncated(expected: Int, actual: Int)
    case trailingBytes(Int)
    /// The content does not hash to the bundle's hash: altered or damaged.
    case hashMismatch
    /// The content hashes right but does not decode.
    case malformed(String)
    case badRange(String)
    /// The bundle decodes, but its history does not verify.
    case invalid(AuditFailure)

    public var description: String {
        switch self {
        case let .io(p, m): "\(p): \(m)"
        case let .tooLarge(b, m): "\(b) bytes, a bundle is at most \(m)"
        case .notABundle: "not an audit bundle (bad magic)"
        case let .unsupportedVersion(v): "bundle version \(v); this build reads \(AuditBundle.formatVersion)"
        case let .truncated(e, a): "truncated: \(a) bytes, the header declares \(e)"
        case let .trailingBytes(n): "\(n) bytes after the bundle's hash"
        case .hashMismatch: "content does not match the bundle's hash (altered or damaged)"
        case let .malformed(why): "malformed content: \(why)"
        case let .badRange(why): "bad range: \(why)"
        case let .invalid(f): "does not verify: \(f)"
        }
    }
}

/// An audit bundle (schemas/FORMAT.md §13): one self-describing file holding a range of
/// blocks with their events and certificates, the genesis, the validator sets that
/// certify them, the state root after each height and, when the range does not start at
/// genesis, the state snapshot it starts from. `verify()` checks it with no log.
public struct AuditBundle: Sendable, Equatable {
    public static let magic: [UInt8] = Array("CLBUNDLE".utf8)
    /// Version 2 adds the power changes that anchor a snapshot to the genesis; version 1
    /// bundles still decode and verify, their snapshot's validators trusted.
    public static let formatVersion: UInt16 = 2
    static let headerBytes = 8 + 2 + 8

    /// The power that certifies blocks from `from` on (to the next set): by consensus key,
    /// with the validator each key belongs to.
    public struct ValidatorSet: Sendable, Equatable {
        public struct Member: Sendable, Equatable { public var key: PublicKey; public var validator: ValidatorID; public var power: UInt64 }
        public var from: Height
        public var members: [Member]
    }

    public var genesisBytes: [UInt8]
    public var fromHeight: Height
    public var toHeight: Height
    /// Canonical state after `fromHeight` (FORMAT.md §7); present exactly when `fromHeight` > 0.
    public var snapshot: [UInt8]?
    /// One at `fromHeight + 1` and one at each epoch start after it, ascending.
    public var validatorSets: [ValidatorSet]
    /// Blocks `fromHeight + 1 ... toHeight` with their event bytes.
    public var blocks: [(block: StoredBlock, events: [[UInt8]])]
    /// State roots after `fromHeight ... toHeight`.
    public var stateRoots: [Hash32]
    /// Version 2, a tree chain, from > 0: every block up to `fromHeight` whose header
    /// changes the power (FORMAT.md §14.3), with its certificate and the new power — the
    /// walk a light client makes from the genesis, which must end at the power of the
    /// snapshot's next block. Empty otherwise.
    public var powerChanges: [PowerChange] = []
    /// Version 2: the stored certificates of stable checkpoints at heights `fromHeight ...
    /// toHeight` (FORMAT.md §10), ascending; replay checks each against the refold, and
    /// one at `fromHeight` against the snapshot.
    public var checkpointCertificates: [CheckpointCertificate] = []
    /// The version these bytes were written in (encoded in it again).
    public var version: UInt16 = formatVersion

    public struct PowerChange: Sendable, Equatable {
        public struct Entry: Sendable, Equatable {
            public var key: PublicKey; public var power: UInt64
            public init(key: PublicKey, power: UInt64) { self.key = key; self.power = power }
        }
        public var header: [UInt8]
        public var certificate: [UInt8]
        public var power: [Entry]
        public init(header: [UInt8], certificate: [UInt8], power: [Entry]) { self.header = header; self.certificate = certificate; self.power = power }

        /// `u32 n | n × (blob32 header | blob32 certificate | u32 m | m × (b32 key | u64 power))`
        /// (FORMAT.md §13; a state-synced log's base keeps the same bytes, §15.4).
        public static func encode(_ list: [PowerChange], _ w: inout ByteWriter) {
            w.u32(UInt32(list.count))
            for p in list {
                w.blob32(p.header); w.blob32(p.certificate)
                w.u32(UInt32(p.power.count))
                for e in p.power { w.b32(e.key); w.u64(e.power) }
            }
        }

        public static func encoded(_ list: [PowerChange]) -> [UInt8] {
            var w = ByteWriter(capacity: 64 + list.count * 512)
            encode(list, &w)
            return w.bytes
        }

        /// At most one a block up to `upTo` (power changes only at epoch ends).
        public static func decode(_ r: inout ByteReader, upTo: Height) throws(DecodeError) -> [PowerChange] {
            var changes: [PowerChange] = []
            for _ in 0 ..< (try r.count32("power changes", max: Int(min(upTo.value, UInt64(Int32.max))))) {
                let header = try r.blob32("power change.header", max: Limits.blockHeaderBytesMax)
                let certificate = try r.blob32("power change.certificate", max: 60 + 96 * Limits.certificateSignersMax)
                var power: [PowerChange.Entry] = []
                for _ in 0 ..< (try r.count32("power change.power", max: Limits.certificateSignersMax)) {
                    power.append(.init(key: try r.b32("power.key"), power: try r.u64("power.power")))
                }
                changes.append(PowerChange(header: header, certificate: certificate, power: power))
            }
            return changes
        }

        public static func decode(_ bytes: [UInt8], upTo: Height) throws(DecodeError) -> [PowerChange] {
            var r = ByteReader(bytes)
            let l = try decode(&r, upTo: upTo)
            try r.end()
            return l
        }

        /// The light client's walk from the genesis over `changes` (all at or below
        /// `upTo`): the power it ends at certifies the blocks after `upTo`.
        public static func walk(genesis: [UInt8], _ changes: [PowerChange], upTo: Height) throws(AuditFailure) -> LightClient {
            do {
                var lc = try LightClient(genesis: genesis)
                for c in changes {
                    let h = try BlockHeader.decode(c.header).height
                    guard h <= upTo else {
                        throw AuditFailure(height: h.value, record: "powerChanges", reason: "a power change at \(h), after the snapshot at \(upTo)")
                    }
                    try lc.adopt(header: c.header, certificate: c.certificate, next: Dictionary(uniqueKeysWithValues: c.power.map { ($0.key, $0.power) }))
                }
                return lc
            } catch let f as AuditFailure {
                throw f
            } catch {
                throw AuditFailure(height: upTo.value, record: "powerChanges", reason: "\(error)")
            }
        }
    }

    public static func == (a: Self, b: Self) -> Bool { a.encoded() == b.encoded() }

    // MARK: bytes

    public func encoded() -> [UInt8] {
        var c = ByteWriter(capacity: 1 << 16)
        c.blob32(genesisBytes)
        c.u64(fromHeight.value); c.u64(toHeight.value)
        if let snapshot { c.u8(1); c.blob32(snapshot) } else { c.u8(0) }
        c.u32(UInt32(validatorSets.count))
        for s in validatorSets {
            c.u64(s.from.value); c.u16(UInt16(s.members.count))
            for m in s.members { c.b32(m.key); c.b32(m.validator); c.u64(m.power) }
        }
        c.u32(UInt32(blocks.count))
        for b in blocks {
            c.blob32(b.block.encoded())
            c.u32(UInt32(b.events.count))
            for e in b.events { c.blob16(e) }
        }
        c.u32(UInt32(stateRoots.count))
        for r in stateRoots { c.b32(r) }
        if version >= 2 {
            PowerChange.encode(powerChanges, &c)
            c.u32(UInt32(checkpointCertificates.count))
            for cert in checkpointCertificates { c.blob32(cert.encoded()) }
        }
        var w = ByteWriter(capacity: c.bytes.count + 64)
        w.raw(Self.magic); w.u16(version); w.u64(UInt64(c.bytes.count)); w.raw(c.bytes)
        w.b32(Blake2b.hash(w.bytes))
        return w.bytes
    }

    /// Checks the frame (magic, version, length, hash) before decoding anything, so a
    /// truncated or altered file is refused as such.
    public static func decode(_ bytes: [UInt8]) throws(BundleError) -> AuditBundle {
        guard bytes.count <= Limits.auditBundleBytesMax else { throw .tooLarge(bytes: bytes.count, max: Limits.auditBundleBytesMax) }
        let m = min(bytes.count, magic.count)
        guard Array(bytes[0 ..< m]) == Array(magic[0 ..< m]) else { throw .notABundle }
        guard bytes.count >= headerBytes else { throw .truncated(expected: headerBytes + 32, actual: bytes.count) }
        var r = ByteReader(bytes)
        let version: UInt16, length: UInt64
        do {
            _ = try r.raw(8, "magic")
            version = try r.u16("version")
            length = try r.u64("length")
        } catch { throw .malformed(error.description) }
        guard version == 1 || version == formatVersion else { throw .unsupportedVersion(version) }
        guard length <= UInt64(Limits.auditBundleBytesMax) else { throw .tooLarge(bytes: Int(clamping: length), max: Limits.auditBundleBytesMax) }
        let total = headerBytes + Int(length) + 32
        guard bytes.count >= total else { throw .truncated(expected: total, actual: bytes.count) }
        guard bytes.count == total else { throw .trailingBytes(bytes.count - total) }
        guard Blake2b.hash(bytes[0 ..< total - 32]) == Bytes32(bytes[(total - 32)...]) else { throw .hashMismatch }
        do { return try content(ByteReader(bytes[headerBytes ..< total - 32]), version: version) } catch { throw .malformed(error.description) }
    }

    static func content(_ reader: ByteReader, version: UInt16) throws(DecodeError) -> AuditBundle {
        var r = reader
        let genesis = try r.blob32("genesis", max: Limits.genesisBytesMax)
        let from = Height(try r.u64("from")), to = Height(try r.u64("to"))
        guard from < to else { throw .invalidValue(field: "range", reason: "from \(from) is not before to \(to)") }
        let hasSnapshot = try r.u8("snapshot present")
        guard hasSnapshot <= 1 else { throw .invalidValue(field: "snapshot present", reason: "\(hasSnapshot) is not 0 or 1") }
        let snapshot = hasSnapshot == 1 ? try r.blob32("snapshot", max: Limits.snapshotBytesMax) : nil
        guard (snapshot != nil) == (from.value > 0) else {
            throw .invalidValue(field: "snapshot", reason: "present exactly when the range starts after genesis")
        }
        let blockCount = to.value - from.value
        var sets: [ValidatorSet] = []
        let n = try r.count32("validator sets", max: Int(min(blockCount, UInt64(Int32.max))))
        for _ in 0 ..< n {
            let h = Height(try r.u64("validator set.from"))
            guard h > (sets.last?.from ?? from), h <= to else { throw .invalidValue(field: "validator set.from", reason: "\(h) out of order or range") }
            var members: [ValidatorSet.Member] = []
            for _ in 0 ..< (try r.count("validator set.members", max: Limits.certificateSignersMax)) {
                let m = ValidatorSet.Member(key: try r.b32("member.key"), validator: try r.id("member.validator"), power: try r.u64("member.power"))
                if let last = members.last, !(last.key < m.key) { throw .invalidValue(field: "validator set.members", reason: "keys not strictly increasing") }
                members.append(m)
            }
            sets.append(ValidatorSet(from: h, members: members))
        }
        guard sets.first?.from == from.next else { throw .invalidValue(field: "validator sets", reason: "the first must start at block \(from.next)") }
        let count = try r.u32("blocks")
        guard UInt64(count) == blockCount else { throw .invalidValue(field: "blocks", reason: "\(count) blocks for heights \(from.next)...\(to)") }
        var blocks: [(block: StoredBlock, events: [[UInt8]])] = []
        for i in 0 ..< Int(count) {
            let b = try StoredBlock.decode(try r.blob32("block", max: Limits.blockHeaderBytesMax + 16 + 96 * Limits.certificateSignersMax)[...])
            guard b.header.height.value == from.value + UInt64(i) + 1 else {
                throw .invalidValue(field: "block", reason: "height \(b.header.height) where \(from.value + UInt64(i) + 1) belongs")
            }
            let m = try r.count32("events", max: Limits.blockEventsMax)
            var events: [[UInt8]] = []
            for _ in 0 ..< m { events.append(try r.blob16("event", max: Limits.eventBytesMax)) }
            blocks.append((b, events))
        }
        let roots = try r.u32("state roots")
        guard UInt64(roots) == blockCount + 1 else { throw .invalidValue(field: "state roots", reason: "\(roots) roots for heights \(from)...\(to)") }
        var stateRoots: [Hash32] = []
        for _ in 0 ..< roots { stateRoots.append(try r.b32("state root")) }
        let (changes, certificates) = version >= 2 ? try anchors(&r, from: from, to: to) : ([], [])
        try r.end()
        return AuditBundle(genesisBytes: genesis, fromHeight: from, toHeight: to, snapshot: snapshot, validatorSets: sets,
                           blocks: blocks, stateRoots: stateRoots, powerChanges: changes, checkpointCertificates: certificates, version: version)
    }
    /// Version 2's tail: the power changes up to `from` (at most one a block: power changes
    /// only at epoch ends) and the checkpoint certificates of `from ... to`, ascending.
    static func anchors(_ r: inout ByteReader, from: Height, to: Height) throws(DecodeError) -> ([PowerChange], [CheckpointCertificate]) {
        let changes = try PowerChange.decode(&r, upTo: from)
        var certificates: [CheckpointCertificate] = []
        for _ in 0 ..< (try r.count32("checkpoint certificates", max: Int(min(to.value - from.value + 1, UInt64(Int32.max))))) {
            var cr = ByteReader(try r.blob32("checkpoint certificate", max: 74 + 96 * Limits.certificateSignersMax))
            let cert = try CheckpointCertificate.decode(&cr)
            try cr.end()
            guard cert.height >= from, cert.height <= to, certificates.last.map({ cert.height > $0.height }) ?? true else {
                throw .invalidValue(field: "checkpoint certificate", reason: "height \(cert.height) out of order or outside \(from)...\(to)")
            }
            certificates.append(cert)
        }
        return (changes, certificates)
    }


    public static func read(path: String) throws(BundleError) -> AuditBundle {
        let size: Int
        do { size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? 0 } catch {
            throw .io(path: path, message: "cannot read: \(error.localizedDescription)")
        }
        guard size <= Limits.auditBundleBytesMax else { throw .tooLarge(bytes: size, max: Limits.auditBundleBytesMax) }
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, message: "cannot read") }
        return try decode([UInt8](data))
    }

    public func write(path: String) throws(BundleError) {
        do { try Data(encoded()).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw .io(path: path, message: "cannot write: \(error.localizedDescription)")
        }
    }

    // MARK: export and verification

    /// Builds the bundle of blocks `from + 1 ... to` (default: head) from a log, which is
    /// verified from genesis on the way: a bundle only ever holds a history that replays.
    public static func export(from log: any EventLog, from: Height = 0, to: Height? = nil,
                              workers: Int = ParallelVerifier.cores) throws(BundleError) -> AuditBundle {
        let meta: LogMetadata
        do {
            guard let m = try log.metadata() else { throw BundleError.badRange("the log has no genesis") }
            meta = m
        } catch let e as BundleError { throw e } catch { throw .io(path: "log", message: "\(error)") }
        let to = to ?? meta.head
        guard to <= meta.head else { throw .badRange("to \(to) is after the head \(meta.head)") }
        guard from < to else { throw .badRange("from \(from) must be before to \(to): a bundle holds at least one block") }
        let observer = ExportObserver(from: from)
        // A state-synced log begins at its base: a bundle from there on carries the power
        // changes the base was anchored with.
        let base: LogBase?
        do { base = try log.base() } catch { throw .io(path: "log", message: "\(error)") }
        if let base {
            guard from >= base.height else { throw .badRange("this log was state-synced at \(base.height): it holds no block before it") }
            do { observer.powerChanges = try AuditBundle.PowerChange.decode(base.anchor, upTo: base.height) } catch {
                throw .malformed("meta[base].anchor: \(error)")
            }
        }
        var r = Replayer(log: log, toHeight: to)
        r.workers = workers
        r.observer = observer
        let (report, state) = r.run()
        guard report.ok, let state else { throw .invalid(report.failure!) }
        // The checkpoint certificates in the range (the replay above checked each).
        var certificates: [CheckpointCertificate] = []
        do {
            for h in try log.checkpointCertificateHeights(from: from, limit: Int(to.value - from.value + 1)) where h <= to {
                guard let bytes = try log.checkpointCertificate(at: h) else { continue }
                certificates.append(try CheckpointCertificate.decode(bytes: bytes))
            }
        } catch { throw .io(path: "log", message: "checkpoint certificates: \(error)") }
        return AuditBundle(genesisBytes: meta.genesisBytes, fromHeight: from, toHeight: to, snapshot: observer.snapshot,
                           validatorSets: observer.sets, blocks: observer.blocks, stateRoots: observer.roots + [state.stateRoot()],
                           powerChanges: from.value > 0 ? observer.powerChanges : [], checkpointCertificates: certificates)
    }

    /// Verifies everything with `Replayer`: signatures, links, events roots, certificates
    /// against the validator sets the refold gives (and the bundle records), and every
    /// state root by refolding from the genesis or the snapshot.
    public func verify(workers: Int = ParallelVerifier.cores) -> (report: ReplayReport, state: LedgerState?) {
        var r = Replayer(source: BundleReplaySource(self))
        r.workers = workers
        return r.run()
    }
}

final class ExportObserver: ReplayObserver {
    let from: Height
    var snapshot: [UInt8]?
    var sets: [AuditBundle.ValidatorSet] = []
    var blocks: [(block: StoredBlock, events: [[UInt8]])] = []
    var roots: [Hash32] = []
    var events: [[UInt8]] = []
    var powerChanges: [AuditBundle.PowerChange] = []
    var powerHash: Hash32?
    init(from: Height) { self.from = from }

    func started(_ state: LedgerState) throws(AuditFailure) {
        powerHash = LedgerState.powerHash(state.powerForNextBlock(), Sodium())
    }

    func blockWillBegin(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        let h = block.header.height
        guard h > from else { return }
        if h == from.next, from.value > 0 { snapshot = state.canonicalBytes() }
        // Replay checked the parent state root against the refold before this call.
        roots.append(block.header.parentStateRoot)
        if h == from.next || LedgerState.isEpochStart(h, interval: state.parameters.checkpointInterval) {
            sets.append(AuditBundle.ValidatorSet(from: h, members: BundleReplaySource.members(state)))
        }
        events = []
    }
    func applied(_ e: LoggedEvent, block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        if block.header.height > from { events.append(e.envelope.bytes) }
    }
    func blockApplied(_ block: StoredBlock, state: LedgerState) throws(AuditFailure) {
        if block.header.height > from { blocks.append((block, events)) }
        // Up to `from`, the headers that change the power: the snapshot's anchor.
        if block.header.height <= from, let post = block.header.post, post.nextPowerHash != powerHash {
            let power = state.powerForNextBlock()
            powerChanges.append(.init(header: block.headerBytes, certificate: block.certificate.encoded(),
                                      power: power.keys.sorted().map { .init(key: $0, power: power[$0]!) }))
            powerHash = post.nextPowerHash
        }
    }
}

/// A bundle as a replay source: starts from the genesis or the snapshot, and compares
/// the recorded validator sets and state roots with the refold.
public struct BundleReplaySource: ReplaySource {
    public let bundle: AuditBundle
    public init(_ bundle: AuditBundle) { self.bundle = bundle }

    /// The power that certifies the block after `state`, sorted by key.
    static func members(_ state: LedgerState) -> [AuditBundle.ValidatorSet.Member] {
        let power = state.powerForNextBlock()
        return power.keys.sorted().map { .init(key: $0, validator: state.consensusKeys[$0] ?? ValidatorID($0), power: power[$0]!) }
    }

    public func opening() throws(AuditFailure) -> ReplayOpening {
        let genesis: Genesis
        do { genesis = try Genesis.decode(bundle.genesisBytes) } catch { throw AuditFailure(height: 0, record: "genesis", reason: error.description) }
        var snapshot: (state: LedgerState, blockHash: Hash32)?
        var anchor = "the genesis"
        if let bytes = bundle.snapshot {
            let s: LedgerState
            do { s = try LedgerState.decodeSnapshot(bytes, crypto: Sodium()) } catch {
                throw AuditFailure(height: bundle.fromHeight.value, record: "snapshot", reason: error.description)
            }
            guard s.height == bundle.fromHeight else {
                throw AuditFailure(height: bundle.fromHeight.value, record: "snapshot", reason: "is the state at \(s.height), not at \(bundle.fromHeight)")
            }
            // The link to the blocks before it: the first block's certificate covers this hash.
            snapshot = (s, bundle.blocks[0].block.header.parentHash)
            anchor = try anchorSnapshot(s, genesis)
            // A certificate over the snapshot's own height signs its root as well.
            if let cert = bundle.checkpointCertificates.first, cert.height == bundle.fromHeight {
                do throws(CertificateError) { try s.verifyCheckpointCertificate(cert, blockHash: bundle.blocks[0].block.header.parentHash) } catch {
                    throw AuditFailure(height: cert.height.value, record: "checkpoint certificate[\(cert.height)]", reason: error.description)
                }
            }
        }
        var o = ReplayOpening(chainID: genesis.chainID, formatVersion: Envelope.formatVersion, genesisHash: Blake2b.hash(bundle.genesisBytes),
                              genesisBytes: bundle.genesisBytes, head: bundle.toHeight, snapshot: snapshot,
                              storedStates: Set((bundle.fromHeight.value ... bundle.toHeight.value).map { Height($0) }),
                              certifiedCheckpoints: Set(bundle.checkpointCertificates.map(\.height).filter { $0 > bundle.fromHeight }))
        o.anchor = anchor
        return o
    }

    /// Ties the snapshot to the genesis: the light client's walk over the bundle's power
    /// changes must end at the power that certifies the block after the snapshot, so the
    /// first block's certificate, checked against that power, vouches for the snapshot's
    /// root with the genesis as the only trust. Returns what the replay trusted.
    func anchorSnapshot(_ s: LedgerState, _ genesis: Genesis) throws(AuditFailure) -> String {
        let from = bundle.fromHeight
        guard bundle.version >= 2, genesis.stateCommitment == StateCommitmentRule.tree else {
            return bundle.version < 2
                ? "the snapshot at \(from) and its validator set (a version 1 bundle carries no power changes)"
                : "the snapshot at \(from) and its validator set (a flat chain's headers commit no power)"
        }
        let lc = try AuditBundle.PowerChange.walk(genesis: bundle.genesisBytes, bundle.powerChanges, upTo: from)
        guard lc.power == s.powerForNextBlock() else {
            throw AuditFailure(height: from.value, record: "powerChanges",
                               reason: "the certificates from the genesis lead to another validator set than the snapshot's for block \(from.next)")
        }
        return "the genesis, through \(bundle.powerChanges.count) certified power changes up to block \(from)"
    }

    public func block(at h: Height) throws(AuditFailure) -> SourcedBlock {
        let i = Int(h.value - bundle.fromHeight.value - 1)
        guard i >= 0, i < bundle.blocks.count else { throw AuditFailure(height: h.value, record: "blocks[\(h)]", reason: "missing") }
        let (b, bytes) = bundle.blocks[i]
        var events: [LoggedEvent] = []
        for (j, e) in bytes.enumerated() {
            let seq = SequenceNumber(b.firstSequence.value + UInt64(j))
            do { events.append(LoggedEvent(sequence: seq, id: EventID(Blake2b.hash(e)), envelope: try Envelope(bytes: e))) } catch {
                throw AuditFailure(height: h.value, record: "events[\(seq)]", reason: error.description)
            }
        }
        return SourcedBlock(block: b, events: events)
    }

    public func checkParent(of h: Height, state: LedgerState) throws(AuditFailure) {
        let required = h == bundle.fromHeight.next || LedgerState.isEpochStart(h, interval: state.parameters.checkpointInterval)
        let exact = bundle.validatorSets.contains { $0.from == h }
        guard required == exact else {
            throw AuditFailure(height: h.value, record: "validatorSets", reason: required ? "no set for the epoch starting at \(h)" : "a set at \(h), which starts no epoch")
        }
        guard let set = bundle.validatorSets.last(where: { $0.from <= h }), set.members == Self.members(state) else {
            throw AuditFailure(height: h.value, record: "validatorSets", reason: "the recorded set for block \(h) differs from the refold's")
        }
    }

    public func checkStored(at h: Height, state: LedgerState) throws(AuditFailure) -> StoredStateKind {
        let root = state.stateRoot()
        guard bundle.stateRoots[Int(h.value - bundle.fromHeight.value)] == root else {
            throw AuditFailure(height: h.value, record: "stateRoots[\(h)]", reason: "recorded root differs from the refold's \(root.short)")
        }
        return .stateRoot
    }

    public func finish(_ end: ReplayEnd) throws(AuditFailure) -> UInt64 {
        guard end.height == bundle.toHeight else {
            throw AuditFailure(height: end.height.value, record: "blocks", reason: "verification stopped at \(end.height), the bundle ends at \(bundle.toHeight)")
        }
        return 0
    }

    public func checkpointCertificate(at h: Height) throws(AuditFailure) -> CheckpointCertificate {
        guard let c = bundle.checkpointCertificates.first(where: { $0.height == h }) else {
            throw AuditFailure(height: h.value, record: "checkpoint certificate[\(h)]", reason: "missing")
        }
        return c
    }
}

extension ByteReader {
    /// A `u32` count, bounded.
    public mutating func count32(_ f: String, max: Int) throws(DecodeError) -> Int {
        let n = Int(try u32(f))
        guard n <= max else { throw .tooLong(field: f, length: n, max: max) }
        return n
    }
}
