import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerViews
import Logging
import PostgresNIO

/// The state the sink has written up to, the hash of its last block, and the height of
/// the snapshot stored with the checkpoint.
struct SinkCursor {
    var state: LedgerState
    var blockHash: Hash32
    var snapshotHeight: Height
}

extension PostgresSink {
    /// Brings the schema to the newest version this binary knows: every pending migration
    /// in order, in one transaction under an advisory lock (two sinks starting at once
    /// migrate once).
    func migrate() async throws {
        let logger = self.sqlLogger, info = self.logger
        try await client.withTransaction(logger: logger) { conn in
            try await conn.query("SELECT pg_advisory_xact_lock(7243002)", logger: logger)
            var exists = false
            for try await b in try await conn.query("SELECT to_regclass('chaosledger.schema_version') IS NOT NULL", logger: logger).decode(Bool.self) {
                exists = b
            }
            var current = 0
            if exists {
                for try await v in try await conn.query("SELECT coalesce(max(version), 0) FROM chaosledger.schema_version", logger: logger).decode(Int.self) {
                    current = v
                }
            }
            guard current <= Migrations.all.count else { throw SinkError.schemaTooNew(found: current, known: Migrations.all.count) }
            for m in Migrations.all where m.version > current {
                info.info("applying schema migration \(m.file)")
                for statement in m.statements { try await conn.query(PostgresQuery(unsafeSQL: statement), logger: logger) }
            }
        }
    }

    /// The cursor at the database's checkpoint: its snapshot refolded (verified, not
    /// written) to the checkpoint's height, which must reach its block hash and state
    /// root. With no checkpoint, the chain's first state is written whole.
    func resume() async throws -> SinkCursor {
        let meta: LogMetadata?
        do { meta = try log.metadata() } catch { throw SinkError.store(error) }
        guard let meta else { throw SinkError.otherChain("the log at \(config.logPath) has no genesis yet") }
        guard let row = try await readCheckpoint() else { return try await first(meta) }
        guard row.chainID == meta.chainID.name, row.genesisHash == meta.genesisHash else {
            throw SinkError.otherChain("the database holds chain \(row.chainID) (genesis \(row.genesisHash.short)); the log is \(meta.chainID.name) (\(meta.genesisHash.short))")
        }
        guard row.height <= meta.head else {
            throw SinkError.otherChain("the database is at height \(row.height), past the log's head \(meta.head)")
        }
        var state: LedgerState
        do { state = try LedgerState.decodeSnapshot(row.snapshot, crypto: Sodium()) } catch {
            throw SinkError.otherChain("the stored snapshot does not decode: \(error)")
        }
        guard state.height == row.snapshotHeight, state.chainID == meta.chainID else {
            throw SinkError.otherChain("the stored snapshot is not this chain's state at \(row.snapshotHeight)")
        }
        state.recordsSealedLeaves = true
        var cursor = SinkCursor(state: state, blockHash: try blockHash(at: state.height, meta), snapshotHeight: state.height)
        if row.height > state.height {
            var r = Replayer(source: SinkSource(log: log, start: (cursor.state, cursor.blockHash)), toHeight: row.height)
            r.verifySignatures = config.verifySignatures
            let (report, s) = r.runChecked()
            guard let s else { throw SinkError.unverified(report.failure!) }
            cursor.state = s
            cursor.blockHash = try blockHash(at: row.height, meta)
        }
        _ = cursor.state.takeSealedLeaves()
        guard cursor.blockHash == row.blockHash, cursor.state.stateRoot() == row.stateRoot else {
            throw SinkError.otherChain("the log's block \(row.height) or its state differs from what the database holds")
        }
        logger.info("resuming at height \(row.height) from the snapshot at \(row.snapshotHeight)")
        return cursor
    }

    func blockHash(at h: Height, _ meta: LogMetadata) throws(SinkError) -> Hash32 {
        if h == 0 { return meta.genesisHash }
        let b: StoredBlock?
        do { b = try log.block(at: h) } catch { throw .store(error) }
        guard let b else { throw .otherChain("the log has no block \(h)") }
        return Blake2b.hash(b.headerBytes)
    }

    /// The first write: the state the log starts from (its genesis, or the base of a
    /// state-synced log, anchored as replay anchors it), every row of it, and the checkpoint.
    func first(_ meta: LogMetadata) async throws -> SinkCursor {
        var state: LedgerState, hash: Hash32
        let base: LogBase?
        do { base = try log.base() } catch { throw SinkError.store(error) }
        if base != nil {
            let opening: ReplayOpening
            do { opening = try LogReplaySource(log).opening() } catch { throw SinkError.unverified(error) }
            (state, hash) = opening.snapshot!
        } else {
            let genesis: Genesis
            do { genesis = try Genesis.decode(meta.genesisBytes) } catch { throw SinkError.otherChain("the log's genesis does not decode: \(error)") }
            state = LedgerState(genesis: genesis, genesisHash: meta.genesisHash, crypto: Sodium())
            hash = meta.genesisHash
        }
        state.seal()
        state.recordsSealedLeaves = true
        var batch = SinkBatch.everything(state)
        batch.lastHash = hash
        try await write(batch, state: state, previous: nil, snapshot: state.canonicalBytes())
        return SinkCursor(state: state, blockHash: hash, snapshotHeight: state.height)
    }

    /// Folds and verifies the blocks up to `to`: the cursor after them, their rows, and
    /// the snapshot to store with their checkpoint when one is due.
    func fold(_ cursor: SinkCursor, to: Height) throws(SinkError) -> (SinkCursor, SinkBatch, snapshot: [UInt8]?) {
        let collector = BatchCollector()
        var r = Replayer(source: SinkSource(log: log, start: (cursor.state, cursor.blockHash)), toHeight: to)
        r.observer = collector
        r.verifySignatures = config.verifySignatures
        let snapshotDue = to.value - cursor.snapshotHeight.value >= config.snapshotEvery
        r.checkSupply = snapshotDue
        let (report, s) = r.runChecked()
        guard var state = s else { throw .unverified(report.failure!) }
        _ = state.takeSealedLeaves()
        let next = SinkCursor(state: state, blockHash: collector.batch.lastHash, snapshotHeight: snapshotDue ? to : cursor.snapshotHeight)
        return (next, collector.batch, snapshotDue ? state.canonicalBytes() : nil)
    }
}

extension Replayer {
    /// `run`, with a failure named when it stopped short.
    mutating func runChecked() -> (report: ReplayReport, state: LedgerState?) {
        let (report, state) = run()
        guard report.ok, let state else {
            var r = report
            if r.failure == nil { r.failure = AuditFailure(height: r.verifiedToHeight, record: "replay", reason: "stopped without a state") }
            return (r, nil)
        }
        return (report, state)
    }
}
