import Foundation
import LedgerAudit
import LedgerCore
import LedgerStore
import Logging
import PostgresNIO

extension PostgresSink {
    /// The benchmark's baseline: the same block and event rows the sink writes, read from
    /// the log and copied with COPY into tables like the sink's (`LIKE … INCLUDING ALL`:
    /// the same columns, keys and indexes) in schema `chaosledger_raw`, in transactions of
    /// `batchBlocks` blocks, with no verification, fold or projection. Returns the events
    /// copied and the seconds it took.
    public func rawCopyBaseline() async throws -> (events: UInt64, seconds: Double) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            defer { group.cancelAll() }
            do { return try await self.rawCopy() } catch let e as SinkError { throw e } catch {
                throw SinkError.database(Self.describe(error))
            }
        }
    }

    func rawCopy() async throws -> (events: UInt64, seconds: Double) {
        try await migrate()
        let logger = self.sqlLogger
        try await client.withTransaction(logger: logger) { conn in
            try await conn.query("DROP SCHEMA IF EXISTS chaosledger_raw CASCADE", logger: logger)
            try await conn.query("CREATE SCHEMA chaosledger_raw", logger: logger)
            try await conn.query("CREATE TABLE chaosledger_raw.blocks (LIKE chaosledger.blocks INCLUDING ALL)", logger: logger)
            try await conn.query("CREATE TABLE chaosledger_raw.events (LIKE chaosledger.events INCLUDING ALL)", logger: logger)
        }
        let head: Height
        do { head = try log.head()?.height ?? 0 } catch { throw SinkError.store(error) }
        let start = DispatchTime.now().uptimeNanoseconds
        var events: UInt64 = 0
        var h: UInt64 = 1
        while h <= head.value {
            var batch = SinkBatch()
            let last = min(head.value, h + UInt64(config.batchBlocks) - 1)
            for height in h ... last {
                let b: SourcedBlock
                do { b = try LogReplaySource(log).block(at: Height(height)) } catch { throw SinkError.unverified(error) }
                _ = BatchCollector.blockRow(&batch.blocks, b.block, stateRoot: b.block.header.parentStateRoot)
                for e in b.events { BatchCollector.eventRow(&batch.events, e, height: Height(height)) }
                events += UInt64(b.events.count)
            }
            try await client.withTransaction(logger: logger) { conn in
                try await conn.query("SET LOCAL search_path TO chaosledger_raw", logger: logger)
                try await Self.copy(conn, "blocks", SinkBatch.blockColumns, batch.blocks, logger)
                try await Self.copy(conn, "events", SinkBatch.eventColumns, batch.events, logger)
            }
            h = last + 1
        }
        return (events, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
