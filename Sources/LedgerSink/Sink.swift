import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerProjections
import LedgerStore
import LedgerViews
import Logging
import PostgresNIO

/// Where and how the sink writes (`chaosledger sink postgres`).
public struct SinkConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 5432
    public var user = "postgres"
    public var password: String?
    public var database = "postgres"
    /// The node's log directory, read without writing (LMDB readers beside the node's writer).
    public var logPath: String
    /// At most this many blocks per transaction (a backfill; a live sink writes what is new).
    public var batchBlocks = 64
    /// A state snapshot is stored with the checkpoint when this many blocks have passed
    /// since the last: a restart refolds at most this many blocks.
    public var snapshotEvery: UInt64 = 1024
    /// How often an idle sink reads the log's head (one LMDB read transaction, microseconds).
    public var pollMs = 20
    /// Also verify every event's signature. Off by default: a follower trusts what a
    /// quorum certified (each header's certificate, and through its events root every
    /// event's bytes, and through the next header the state the fold reached), as a
    /// light client does; `chaosledger replay` is the audit that checks every signature.
    public var verifySignatures = false
    /// Stop once the log's head is written (a backfill), instead of following it.
    public var stopAtHead = false
    public var untilHeight: Height?

    public init(logPath: String) { self.logPath = logPath }

    /// `postgres://user[:password]@host[:port]/database`.
    public mutating func setDatabase(url: String) throws(SinkError) {
        guard let u = URLComponents(string: url), u.scheme == "postgres" || u.scheme == "postgresql", let h = u.host, !h.isEmpty else {
            throw .badConfig("the database URL must look like postgres://user@host:port/database, not \(url)")
        }
        host = h
        port = u.port ?? 5432
        if let name = u.user, !name.isEmpty { user = name }
        password = u.password
        let path = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
        if !path.isEmpty { database = path }
    }
}

public enum SinkError: Error, Sendable, CustomStringConvertible {
    case badConfig(String)
    /// The log failed verification at a block: nothing of that batch was written.
    case unverified(AuditFailure)
    case store(StoreError)
    /// The database holds another chain, or a history this log does not continue.
    case otherChain(String)
    /// The database's schema is newer than this binary knows.
    case schemaTooNew(found: Int, known: Int)
    case database(String)

    public var description: String {
        switch self {
        case let .badConfig(why): "bad configuration: \(why)"
        case let .unverified(f): "the log does not verify: \(f); nothing of that batch was written"
        case let .store(e): "reading the log: \(e)"
        case let .otherChain(why): "the database does not follow this log: \(why)"
        case let .schemaTooNew(found, known): "the database's schema is version \(found); this sink knows up to \(known)"
        case let .database(why): "PostgreSQL: \(why)"
        }
    }
}

/// What the sink reached: height, blocks and events written this run.
public struct SinkProgress: Sendable {
    public var height: Height
    public var blocks: UInt64 = 0
    public var events: UInt64 = 0
    public var transactions: UInt64 = 0
}

/// Follows a node's log and writes every verified block, its events and the projections
/// into PostgreSQL (schemas/postgres). Each transaction writes a run of blocks with the
/// checkpoint that names its last block, so a sink killed at any point resumes from the
/// checkpoint with nothing half-written and no row twice.
public final class PostgresSink: Sendable {
    public let config: SinkConfig
    let logger: Logger
    /// PostgresNIO's own messages: errors only (they come back as `SinkError.database`).
    let sqlLogger: Logger
    let client: PostgresClient
    let log: any EventLog

    public init(_ config: SinkConfig, logger: Logger = Logger(label: "chaosledger.sink")) throws(SinkError) {
        self.config = config
        self.logger = logger
        var sql = logger
        sql.logLevel = .error
        sqlLogger = sql
        do { log = try LedgerLog.openLMDB(path: config.logPath, mode: .readOnly) } catch { throw .store(error) }
        let pg = PostgresClient.Configuration(host: config.host, port: config.port, username: config.user,
                                              password: config.password, database: config.database, tls: .disable)
        client = PostgresClient(configuration: pg, backgroundLogger: sqlLogger)
    }

    /// Runs until the head is written (`stopAtHead`), `untilHeight`, or cancellation.
    public func run(progress: @escaping @Sendable (SinkProgress) -> Void = { _ in }) async throws -> SinkProgress {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.client.run() }
            defer { group.cancelAll() }
            do { return try await self.follow(progress: progress) } catch let e as SinkError { throw e } catch is CancellationError {
                throw CancellationError()
            } catch {
                throw SinkError.database(Self.describe(error))
            }
        }
    }

    /// PostgresNIO's errors print only a generic text unless reflected; the server's
    /// message and SQL state are what an operator needs.
    static func describe(_ error: any Error) -> String {
        if let t = error as? PostgresTransactionError {
            return describe(t.closureError ?? t.beginError ?? t.commitError ?? t.rollbackError ?? error)
        }
        if let p = error as? PSQLError {
            if let m = p.serverInfo?[.message] { return "\(m) (SQLSTATE \(p.serverInfo?[.sqlState] ?? "?"))" }
            return "\(p.code)"
        }
        return String(describing: error)
    }

    /// Folds batch n + 1 while PostgreSQL commits batch n: the fold needs only the state,
    /// and the transactions still commit one at a time, in order, each with its checkpoint.
    func follow(progress: @Sendable (SinkProgress) -> Void) async throws -> SinkProgress {
        try await migrate()
        var cursor = try await resume()
        var done = SinkProgress(height: cursor.state.height), written = done
        var pending: Task<Void, any Error>?
        defer { pending?.cancel() }
        func settle() async throws {
            guard let p = pending else { return }
            try await p.value
            pending = nil
            written = done
            progress(written)
        }
        while !Task.isCancelled {
            let head: Height
            do { head = try log.head()?.height ?? 0 } catch { throw SinkError.store(error) }
            let limit = config.untilHeight.map { min($0, head) } ?? head
            if cursor.state.height >= limit {
                try await settle()
                if config.stopAtHead || (config.untilHeight.map { cursor.state.height >= $0 } ?? false) { break }
                try await Task.sleep(for: .milliseconds(config.pollMs))
                continue
            }
            let to = Height(min(limit.value, cursor.state.height.value + UInt64(config.batchBlocks)))
            let (next, batch, snapshot) = try fold(cursor, to: to)
            try await settle()
            let previous = cursor.state.height, state = next.state
            pending = Task { try await self.write(batch, state: state, previous: previous, snapshot: snapshot) }
            done.height = to
            done.blocks += to.value - previous.value
            done.events += next.state.eventsApplied - cursor.state.eventsApplied
            done.transactions += 1
            cursor = next
        }
        try await settle()
        return written
    }
}
