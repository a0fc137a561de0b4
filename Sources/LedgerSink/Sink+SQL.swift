import Foundation
import LedgerCore
import LedgerProjections
import LedgerViews
import Logging
import PostgresNIO

/// The checkpoint row (schemas/postgres/001_init.sql).
struct CheckpointRow {
    var chainID: String
    var genesisHash: Hash32
    var height: Height
    var blockHash: Hash32
    var stateRoot: Hash32
    var snapshotHeight: Height
    var snapshot: [UInt8]
}

extension ByteBuffer {
    var hash32: Hash32? { readableBytes == 32 ? Bytes32(readableBytesView) : nil }
}

extension PostgresSink {
    func readCheckpoint() async throws -> CheckpointRow? {
        let rows = try await client.query(
            "SELECT chain_id, genesis_hash, height, block_hash, state_root, snapshot_height, snapshot FROM chaosledger.checkpoint", logger: sqlLogger)
        for try await (chain, genesis, height, block, root, snapHeight, snapshot) in rows.decode((String, ByteBuffer, Int64, ByteBuffer, ByteBuffer, Int64, ByteBuffer).self) {
            guard let g = genesis.hash32, let b = block.hash32, let r = root.hash32, height >= 0, snapHeight >= 0, snapHeight <= height else {
                throw SinkError.otherChain("the checkpoint row is malformed")
            }
            return CheckpointRow(chainID: chain, genesisHash: g, height: Height(UInt64(height)), blockHash: b, stateRoot: r,
                                 snapshotHeight: Height(UInt64(snapHeight)), snapshot: Array(snapshot.readableBytesView))
        }
        return nil
    }

    /// One transaction: the batch's blocks, events and balances, the projection rows it
    /// touched (deleted by key, then copied from `state`), the chain row and the
    /// checkpoint. The checkpoint moves only from `previous` (nil: there is none yet), so
    /// a second sink writing the same database fails instead of interleaving.
    func write(_ batch: SinkBatch, state: LedgerState, previous: Height?, snapshot: [UInt8]?) async throws {
        let logger = self.sqlLogger
        try await client.withTransaction(logger: logger) { conn in
            try await conn.query("SET LOCAL search_path TO chaosledger", logger: logger)
            try await Self.copy(conn, "blocks", SinkBatch.blockColumns, batch.blocks, logger)
            try await Self.copy(conn, "events", SinkBatch.eventColumns, batch.events, logger)
            try await Self.copy(conn, "balance_history", SinkBatch.balanceColumns, batch.balances, logger)
            for (i, t) in ProjectionTable.all.enumerated() where !batch.changed[i].isEmpty {
                let keys = batch.changed[i].keys.sorted()
                let firsts = keys.map { ByteBuffer(bytes: $0.first.bytes) }
                if t.keyColumns.count == 1 {
                    try await conn.query("DELETE FROM \(unescaped: t.name) WHERE \(unescaped: t.keyColumns[0]) = ANY(\(firsts)::bytea[])", logger: logger)
                } else {
                    let seconds = keys.map { ByteBuffer(bytes: ($0.second ?? .zero).bytes) }
                    try await conn.query("""
                        DELETE FROM \(unescaped: t.name) WHERE (\(unescaped: t.keyColumns.joined(separator: ", "))) IN \
                        (SELECT * FROM unnest(\(firsts)::bytea[], \(seconds)::bytea[]))
                        """, logger: logger)
                }
                var rows = CopyRows()
                for k in keys {
                    let mark = rows.beginRow()
                    rows.bytes(k.first)
                    if let s = k.second { rows.bytes(s) }
                    if t.write(k, state, batch.changed[i][k]!, &rows) { rows.endRow() } else { rows.cancelRow(mark) }
                }
                try await Self.copy(conn, t.name, t.keyColumns + t.columns, rows, logger)
            }
            let summary = storableJSON(Render.summary(state)), economy = storableJSON(Render.economy(state))
            try await conn.query("DELETE FROM chain", logger: logger)
            try await conn.query("INSERT INTO chain (summary, economy) VALUES (\(summary)::jsonb, \(economy)::jsonb)", logger: logger)
            try await Self.checkpoint(conn, batch, state: state, previous: previous, snapshot: snapshot, logger)
        }
    }

    static func checkpoint(_ conn: PostgresConnection, _ batch: SinkBatch, state: LedgerState, previous: Height?,
                           snapshot: [UInt8]?, _ logger: Logger) async throws {
        let height = Int64(state.height.value), next = Int64(state.eventsApplied)
        let hash = ByteBuffer(bytes: batch.lastHash.bytes), root = ByteBuffer(bytes: state.stateRoot().bytes)
        guard let previous else {
            try await conn.query("""
                INSERT INTO checkpoint (chain_id, genesis_hash, height, block_hash, state_root, next_sequence, snapshot_height, snapshot)
                VALUES (\(state.chainID.name), \(ByteBuffer(bytes: state.genesisHash.bytes)), \(height), \(hash), \(root), \(next), \(height), \(ByteBuffer(bytes: snapshot ?? [])))
                """, logger: logger)
            return
        }
        let moved: PostgresRowSequence
        if let snapshot {
            moved = try await conn.query("""
                UPDATE checkpoint SET height = \(height), block_hash = \(hash), state_root = \(root), next_sequence = \(next),
                snapshot_height = \(height), snapshot = \(ByteBuffer(bytes: snapshot)), updated_at = now()
                WHERE height = \(Int64(previous.value)) RETURNING height
                """, logger: logger)
        } else {
            moved = try await conn.query("""
                UPDATE checkpoint SET height = \(height), block_hash = \(hash), state_root = \(root), next_sequence = \(next), updated_at = now()
                WHERE height = \(Int64(previous.value)) RETURNING height
                """, logger: logger)
        }
        var count = 0
        for try await _ in moved.decode(Int64.self) { count += 1 }
        guard count == 1 else { throw SinkError.otherChain("the checkpoint moved from \(previous) while this sink wrote: another sink writes this database") }
    }

    /// COPY FROM STDIN in slices of 1 MiB.
    static func copy(_ conn: PostgresConnection, _ table: String, _ columns: [String], _ rows: CopyRows, _ logger: Logger) async throws {
        guard rows.count > 0 else { return }
        try await conn.copyFrom(table: table, columns: columns, logger: logger) { writer in
            var buffer = rows.buffer
            while buffer.readableBytes > 0 {
                // Rows may straddle slices: COPY takes the data as one stream.
                try await writer.write(buffer.readSlice(length: min(buffer.readableBytes, 1 << 20))!)
            }
        }
    }
}
