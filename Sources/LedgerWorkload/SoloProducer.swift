import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore

/// Why an event was not admitted. Nothing changes when an event is refused.
public enum AdmissionError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(DecodeError)
    case rejected(ApplyError)
    /// The producer could not take the event now (its full block failed to commit).
    case unavailable(String)
    public var description: String {
        switch self {
        case let .malformed(d): "malformed event: \(d)"
        case let .rejected(a): "rejected: \(a)"
        case let .unavailable(why): "not admitted now: \(why)"
        }
    }
}

public enum ProducerError: Error, CustomStringConvertible {
    case store(StoreError)
    case load(StateLoader.LoadError)
    case notAValidator(PublicKey)
    case certificate(CertificateError)
    public var description: String {
        switch self {
        case let .store(e): e.description
        case let .load(e): e.description
        case let .notAValidator(k): "key \(k.short) holds no voting power on this chain"
        case let .certificate(e): "own certificate does not verify: \(e)"
        }
    }
}

/// A single-validator producer, for making real logs before consensus exists. It
/// admits signed events against a working state (the committed state plus the open
/// block), packs blocks within the chain's count and size limits, and commits each with
/// its own signature as the certificate, which the replay checks like any other.
public final class SoloProducer {
    public let log: any EventLog
    public let key: SigningKey
    public private(set) var state: LedgerState
    private var working: LedgerState
    private var open: [(id: EventID, envelope: Envelope)] = []
    private var openIDs = Set<EventID>()
    private var openBytes = 0
    private var openContext: BlockContext?
    private let clock: (Height) -> UInt64
    private var scratch: [UInt8] = []
    public var meme: (Height) -> [UInt8] = { _ in [] }
    public private(set) var lastCommitted: Height
    /// The error of the last checkpoint that could not be written, if any.
    public private(set) var checkpointError: StoreError?
    /// Which checkpoints it keeps (`StateRetention`).
    public var retention = StateRetention()

    /// `clock` gives the timestamp (ms) for a new block at a height; a demo passes a
    /// deterministic one, a live producer the wall clock.
    public init(log: any EventLog, key: SigningKey, clock: @escaping (Height) -> UInt64) throws(ProducerError) {
        self.log = log
        self.key = key
        self.clock = clock
        do { (state, _) = try StateLoader.load(log) } catch { throw .load(error) }
        guard state.powerForNextBlock()[key.publicKey] != nil else { throw .notAValidator(key.publicKey) }
        working = state
        lastCommitted = state.height
    }

    public var openEvents: Int { open.count }
    /// The committed state plus the open block: what the next event is checked against.
    public var pendingState: LedgerState { working }

    /// Admits one event: size, structure, signature, then every state rule (nonce, fee,
    /// balance, …) against the working state. Commits the open block first when the
    /// event would not fit in it.
    @discardableResult
    public func submit(_ bytes: [UInt8]) throws(AdmissionError) -> EventID {
        guard bytes.count <= Limits.eventBytesMax else {
            throw .rejected(.oversized(bytes: bytes.count, max: Limits.eventBytesMax))
        }
        let e: Envelope
        do { e = try Envelope(bytes: bytes) } catch { throw .malformed(error) }
        guard EventCrypto.verify(e, scratch: &scratch) else { throw .rejected(.badSignature) }
        return try admitVerified(e, id: EventCrypto.id(bytes))
    }

    /// Admits an event whose signature the caller already verified (batch ingest).
    public func admitVerified(_ e: Envelope, id: EventID) throws(AdmissionError) -> EventID {
        guard !openIDs.contains(id) else { throw .rejected(.duplicateEvent(id)) }
        if open.count + 1 > Int(state.parameters.blockEventsMax) || openBytes + e.bytes.count > Int(state.parameters.blockBytesMax) {
            // A full block is committed before the next event goes in. If that commit
            // fails, the event is refused: it must never overfill the open block.
            do { try commit() } catch { throw .unavailable(error.description) }
        }
        let ctx = openBlockContext()
        do { try working.apply(e, id: id, ctx) } catch { throw .rejected(error) }
        open.append((id, e))
        openIDs.insert(id)
        openBytes += e.bytes.count
        return id
    }

    /// Decodes, size-checks and verifies a batch on every core, and computes the ids:
    /// everything about admission that does not depend on the state.
    public static func prepare(_ batch: [[UInt8]]) -> [Result<(Envelope, EventID), AdmissionError>] {
        var decoded: [Result<Envelope, AdmissionError>] = batch.map { b in
            guard b.count <= Limits.eventBytesMax else { return .failure(.rejected(.oversized(bytes: b.count, max: Limits.eventBytesMax))) }
            do throws(DecodeError) { return .success(try Envelope(bytes: b)) } catch { return .failure(.malformed(error)) }
        }
        let envs = decoded.compactMap { try? $0.get() }
        let ok = ParallelVerifier.verify(envs)
        var k = 0
        for i in decoded.indices {
            if case .success = decoded[i] {
                if !ok[k] { decoded[i] = .failure(.rejected(.badSignature)) }
                k += 1
            }
        }
        return decoded.map { r in r.map { ($0, EventCrypto.id($0.bytes)) } }
    }

    /// Verifies a batch on every core, then admits in order. Returns one result per event.
    public func submitBatch(_ batch: [[UInt8]]) -> [Result<EventID, AdmissionError>] {
        admit(Self.prepare(batch))
    }

    private func admit(_ prepared: [Result<(Envelope, EventID), AdmissionError>]) -> [Result<EventID, AdmissionError>] {
        prepared.map { r in
            switch r {
            case let .failure(e): .failure(e)
            case let .success((env, id)): Result { () throws(AdmissionError) in try admitVerified(env, id: id) }
            }
        }
    }

    /// Ingests batches, committing a block after each: batch i+1 is decoded and
    /// verified on other threads while batch i is admitted and committed, so the
    /// serial work overlaps verification. Returns the results per batch.
    public func ingest(_ batches: [[[UInt8]]]) throws(ProducerError) -> [[Result<EventID, AdmissionError>]] {
        var out: [[Result<EventID, AdmissionError>]] = []
        out.reserveCapacity(batches.count)
        try Pipeline.run(count: batches.count, prepare: { i in Self.prepare(batches[i]) }) { (_: Int, prepared) throws(ProducerError) in
            out.append(admit(prepared))
            try commit()
        }
        return out
    }

    private func openBlockContext() -> BlockContext {
        if let c = openContext { return c }
        let h = state.height.next
        let ts = max(clock(h), state.timestampMs)
        let c = BlockContext(height: h, timestampMs: ts, proposer: key.publicKey)
        // Height and time are in order by construction, so beginBlock cannot fail.
        try! working.beginBlock(c)
        openContext = c
        return c
    }

    /// Commits the open block (if it has events): one durable LMDB transaction holding
    /// header, events, certificate and head; then a checkpoint when due.
    @discardableResult
    public func commit() throws(ProducerError) -> StoredBlock? {
        guard let ctx = openContext, !open.isEmpty else { return nil }
        let head = try logHead()
        let header = BlockHeader(
            chainID: state.chainID.raw, height: ctx.height, parentHash: head.hash, view: 0,
            timestampMs: ctx.timestampMs, proposer: key.publicKey, eventCount: UInt32(open.count),
            eventsRoot: EventCrypto.eventsRoot(open.map(\.id)), parentStateRoot: state.stateRoot(), post: working.postState(),
            meme: Array(meme(ctx.height).prefix(Limits.memeBytesMax)))
        let headerBytes = header.encoded()
        let hash = Blake2b.hash(headerBytes)
        let vote = EventCrypto.signCommit(chain: state.chainID.raw, height: ctx.height, view: 0, blockHash: hash, key: key)
        let cert = CommitCertificate(height: ctx.height, view: 0, blockHash: hash, votes: [vote])
        // Pair assertion: the certificate must pass the same check a replay makes.
        do { try state.verifyCertificate(cert, height: ctx.height, blockHash: hash) } catch { throw .certificate(error) }
        let first = head.nextSequence
        let block = StoredBlock(header: header, certificate: cert, firstSequence: first)
        do { try log.append(BlockCommit(block: block, blockHash: hash, events: open, nextPower: working.storedNextPower())) } catch { throw .store(error) }
        state = working
        // The block's writes go into the state tree once, here; the next block's
        // `beginBlock` then finds nothing left to fold.
        state.seal()
        working = state
        lastCommitted = ctx.height
        open.removeAll(keepingCapacity: true)
        openIDs.removeAll(keepingCapacity: true)
        openBytes = 0
        openContext = nil
        // The block is committed whatever happens next. A checkpoint is disposable: one
        // that cannot be written (a full map or disk) is reported, never turned into a
        // failed commit, and the next interval tries again.
        if ctx.height.value % state.parameters.checkpointInterval == 0 {
            do {
                try log.putCheckpoint(height: ctx.height, snapshot: state.canonicalBytes())
                let (head, k, retention) = (ctx.height, state.parameters.checkpointInterval, retention)
                try log.pruneCheckpoints { retention.keeps($0, head: head, interval: k) }
            } catch { checkpointError = error }
        }
        return block
    }

    private func logHead() throws(ProducerError) -> LogHead {
        let m: LogHead?
        do { m = try log.head() } catch { throw .store(error) }
        guard let m else { throw .store(.notInitialized) }
        return m
    }
}

extension EventLog {
    /// Writes the genesis into an empty log.
    public func initialize(genesis: Genesis) throws(StoreError) -> Hash32 {
        let bytes = genesis.encoded()
        let hash = Blake2b.hash(bytes)
        try initialize(chainID: genesis.chainID, genesisBytes: bytes, genesisHash: hash)
        return hash
    }
}
