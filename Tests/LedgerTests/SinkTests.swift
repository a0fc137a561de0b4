import Foundation
import Hummingbird
import HummingbirdTesting
import LedgerAudit
import LedgerCore
import LedgerHTTP
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerViews
import Logging
import Testing

/// A PostgreSQL cluster of the test's own on a free port (tools/postgres.sh), stopped by `stop()`.
final class PostgresServer: Sendable {
    let dir: TempDir
    let port: Int

    init() throws {
        dir = TempDir("pg")
        // Ports are drawn until one is free (another suite or run may hold one).
        var port = 0
        for _ in 0 ..< 5 {
            let p = Int.random(in: 21_000 ..< 29_000)
            let r = try run(repoRoot + "/tools/postgres.sh", ["start", dir.sub("data"), "\(p)"])
            if r.status == 0 { port = p; break }
        }
        guard port != 0 else { throw CLIFailure("tools/postgres.sh could not start a cluster (is PostgreSQL installed? ./tools/setup.sh)") }
        self.port = port
    }

    func stop() {
        _ = try? run(repoRoot + "/tools/postgres.sh", ["stop", dir.sub("data")])
        dir.cleanup()
    }

    func url(_ database: String = "postgres") -> String { "postgres://postgres@127.0.0.1:\(port)/\(database)" }

    /// Runs `sql` with psql; its unaligned output, trimmed.
    @discardableResult
    func psql(_ sql: String, database: String = "postgres") throws -> String {
        let r = try run("/usr/bin/psql", ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres", "-d", database, "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard r.status == 0 else { throw CLIFailure("psql: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A query returning one JSON value, parsed.
    func json(_ sql: String, database: String = "postgres") throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try psql(sql, database: database).utf8), options: [.fragmentsAllowed])
    }
}

struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// The HTTP API's view of a log: a read-only node at the log's head (what a follower of
/// that log would serve), for comparing the sink's tables through the API.
final class LogService: NodeService {
    let log: any EventLog
    let head: LedgerState

    init(path: String) throws {
        log = try LedgerLog.openLMDB(path: path, mode: .readOnly)
        let (report, state) = Replayer(log: log).run()
        guard let state else { throw CLIFailure("the log does not replay: \(report.failure!)") }
        head = state
    }

    func submit(_ events: [[UInt8]], waitCommitted: Bool, timeoutMs: UInt64) async -> [Receipt] {
        events.map { _ in Receipt(id: nil, status: .rejected, code: "unavailable", error: "read-only") }
    }
    func eventStatus(_ id: EventID) async -> EventStatus { .unknown }
    func status() async -> NodeStatus {
        let h = try! log.head()!
        return NodeStatus(role: .follower, nodeKey: .zero, chainID: head.chainID.name, height: h.height, headHash: h.hash,
                          stateRoot: head.stateRoot(), view: 0, changing: false, primary: nil, mempool: 0, peers: 0, viewChanges: 0,
                          committedEvents: h.nextSequence.value, commitLatencyMs: nil, ready: true, stopping: false)
    }
    func state(at height: Height?) async throws(ServiceError) -> LedgerState {
        guard height == nil || height == head.height else { throw .noSuchHeight(height!) }
        return head
    }
    func feeEstimate() async -> FeeEstimate { FeeEstimate.make(head, mempool: 0) }
    func peers() -> [PeerInfo] { [] }
    func committedEvents(from: SequenceNumber, max: Int) throws(ServiceError) -> [LoggedEvent]? {
        do { return try log.events(from: from, count: max) } catch { throw .store(error) }
    }
}

/// Issue 21: the PostgreSQL sink against a real server, on a demo log that holds every
/// event kind (rule version 3).
@Suite("PostgreSQL sink", .serialized, .timeLimit(.minutes(10)))
struct SinkTests {
    static func demoLog(_ d: TempDir, events: Int = 5000) throws -> String {
        let path = d.sub("log")
        let r = try run(chaosledgerBinary, ["demo", "--dir", path, "--events", "\(events)"])
        guard r.status == 0 else { throw CLIFailure("demo: \(r.stderr)") }
        return path
    }

    static func sink(_ log: String, _ url: String, _ extra: [String] = []) throws -> ProcessResult {
        try run(chaosledgerBinary, ["sink", "postgres", "--log", log, "--database", url, "--stop-at-head"] + extra)
    }
}

extension SinkTests {
    /// Every page of a list endpoint, by id, without the fields the sink leaves to SQL.
    static func pages(_ client: any TestClientProtocol, _ path: String, _ name: String, id: String,
                      dropping drop: [String] = []) async throws -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:], after: String?
        repeat {
            let r = try await client.call(.get, path + "?limit=1000" + (after.map { "&after=\($0)" } ?? ""))
            let page = try #require(r.json, "\(path): \(r.text)")
            for var v in page[name] as? [[String: Any]] ?? [] {
                for d in drop { v[d] = nil }
                out[v[id] as! String] = v
            }
            after = page["next"] as? String
        } while after != nil
        return out
    }

    /// Equal as JSON: both written again with sorted keys.
    static func same(_ a: Any?, _ b: Any?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return Render.json([a]) == Render.json([b])
    }

    @Test func everyTableAgreesWithTheAPIAtTheSameHeight() async throws {
        let d = TempDir("sink"), pg = try PostgresServer()
        defer { d.cleanup(); pg.stop() }
        let log = try Self.demoLog(d)
        let r = try Self.sink(log, pg.url())
        try #require(r.status == 0, "\(r.stderr)")
        let service = try LogService(path: log)
        let head = service.head
        // updated_height is the block that last changed a row, not the batch's end: an
        // account's is at or after its last balance change, and never past the head.
        #expect(try pg.psql("""
            SELECT count(*) FROM chaosledger.accounts a WHERE updated_height > \(head.height.value)
               OR updated_height < (SELECT coalesce(max(height), 0) FROM chaosledger.balance_history h WHERE h.account = a.key)
            """) == "0")
        #expect(Int(try pg.psql("SELECT count(DISTINCT updated_height) FROM chaosledger.agents")) ?? 0 > 1)
        #expect(try pg.psql("SELECT height || ' ' || encode(state_root, 'hex') FROM chaosledger.checkpoint") == "\(head.height.value) \(head.stateRoot().hex)")
        let app = API.application(service: service, config: APIConfig(port: 0), registry: NodeMetrics.bootstrap(), logger: Logger(label: "sink-test"))
        try await app.test(.router) { client in
            let summary = try #require(try await client.call(.get, "/v1/state").json)
            #expect(Self.same(summary, try pg.json("SELECT summary FROM chaosledger.chain")))
            #expect(Self.same(try await client.call(.get, "/v1/economy").json, try pg.json("SELECT economy FROM chaosledger.chain")))
            let tables: [(path: String, table: String, key: String, id: String, drop: [String])] = [
                ("validators", "validators", "id", "id", []), ("agents", "agents", "key", "agent", ["status", "reputation"]),
                ("alliances", "alliances", "id", "id", []), ("jobs", "jobs", "id", "id", ["matches"]),
                ("memes", "memes", "id", "id", []), ("proposals", "proposals", "id", "id", []),
            ]
            for t in tables {
                let api = try await Self.pages(client, "/v1/\(t.path)", t.path, id: t.id, dropping: t.drop)
                let rows = try #require(try pg.json("SELECT coalesce(json_object_agg(encode(\(t.key), 'hex'), view), '{}') FROM chaosledger.\(t.table)") as? [String: Any])
                #expect(!api.isEmpty, "the demo log has \(t.table)")
                #expect(Set(api.keys) == Set(rows.keys), "\(t.table): the same entities")
                for (k, v) in api { #expect(Self.same(v, rows[k]), "\(t.table) \(k)") }
            }
            // Accounts (and in their views, delegations and unbondings) one by one.
            let accounts = try #require(try pg.json("SELECT json_object_agg(encode(key, 'hex'), view) FROM chaosledger.accounts") as? [String: Any])
            #expect(accounts.count == summary["accounts"] as? Int)
            for (k, v) in accounts { #expect(Self.same(try await client.call(.get, "/v1/accounts/\(k)").json, v), "account \(k)") }
            let delegations = try pg.psql("SELECT count(*) FROM chaosledger.delegations")
            #expect(delegations == "\(head.delegations.count)" && head.delegations.count > 0)
            // What changes with the height alone, computed in SQL.
            let now = try #require(try pg.json("SELECT json_object_agg(encode(key, 'hex'), json_build_object('status', status, 'reputation', reputation)) FROM chaosledger.agents_now") as? [String: [String: Any]])
            for (k, v) in now {
                let a = try #require(try await client.call(.get, "/v1/agents/\(k)").json)
                #expect(Self.same(a["status"], v["status"]) && Self.same(a["reputation"], v["reputation"]), "agent \(k): \(v)")
            }
            let reputation = try #require(try pg.json("SELECT json_object_agg(encode(agent, 'hex'), as_of) FROM chaosledger.reputation") as? [String: Any])
            #expect(reputation.count == head.economy.reputation.count && !reputation.isEmpty)
            for (k, asOf) in reputation { #expect(Self.same(try await client.call(.get, "/v1/reputation/\(k)").json?["asOf"], asOf)) }
            #expect(try pg.psql("SELECT count(*) FROM chaosledger.slashes") == "\(summary["slashes"] as! Int)")
        }
        // docs/SQL.md's audit queries run as written, and find something in the demo log.
        let doc = try String(contentsOfFile: repoRoot + "/docs/SQL.md", encoding: .utf8)
        let queries = doc.components(separatedBy: "```sql\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        #expect(queries.count >= 4)
        for q in queries { #expect(!(try pg.psql(q)).isEmpty, "no rows: \(q)") }
    }
}

extension SinkTests {
    static let tables = ["checkpoint", "blocks", "events", "chain", "accounts", "balance_history", "validators", "delegations",
                         "slashes", "agents", "alliances", "jobs", "reputation", "memes", "proposals"]

    /// Each table's row count and a hash of its rows in order, without the wall-clock columns.
    static func fingerprint(_ pg: PostgresServer, _ db: String) throws -> [String: String] {
        var out: [String: String] = [:]
        for t in tables {
            out[t] = try pg.psql("""
                SELECT count(*) || ' ' || md5(coalesce(string_agg(r, '|' ORDER BY r), '')) FROM
                (SELECT (to_jsonb(t) - 'sunk_at' - 'updated_at')::text AS r FROM chaosledger.\(t) t) q
                """, database: db)
        }
        return out
    }

    /// What must hold after any kill: the checkpoint names the last block written, and
    /// every event and balance row belongs to a block at or below it.
    static func consistent(_ pg: PostgresServer, _ db: String) throws -> (height: UInt64, ok: Bool) {
        // Killed before its first transaction committed: no schema, or no checkpoint yet.
        guard try pg.psql("SELECT to_regclass('chaosledger.checkpoint') IS NOT NULL", database: db) == "t" else { return (0, true) }
        let row = try pg.psql("""
            SELECT c.height, coalesce((SELECT max(height) FROM chaosledger.blocks), 0), c.next_sequence,
                   (SELECT count(*) FROM chaosledger.events), coalesce((SELECT max(height) FROM chaosledger.balance_history), 0)
            FROM chaosledger.checkpoint c
            """, database: db)
        let v = row.split(separator: "|").compactMap { UInt64($0) }
        guard v.count == 5 else { return (0, row.isEmpty) }
        return (v[0], v[0] == v[1] && v[2] == v[3] && v[4] <= v[0])
    }

    @Test func killedAtRandomPointsTheSinkResumesToTheSameTables() throws {
        let d = TempDir("sink-kill"), pg = try PostgresServer()
        defer { d.cleanup(); pg.stop() }
        let log = try Self.demoLog(d, events: 2000)
        try pg.psql("CREATE DATABASE clean")
        try pg.psql("CREATE DATABASE killed")
        // One transaction per block, a snapshot every 3: kills land between and inside
        // transactions, and resumes start from snapshots behind the checkpoint.
        let args = ["--batch-blocks", "1", "--snapshot-every", "3"]
        let clean = try Self.sink(log, pg.url("clean"), args)
        try #require(clean.status == 0, "\(clean.stderr)")
        let head = try #require(UInt64(try pg.psql("SELECT height FROM chaosledger.checkpoint", database: "clean")))
        var heights: [UInt64] = []
        for k in 0 ..< 20 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chaosledgerBinary)
            p.arguments = ["sink", "postgres", "--log", log, "--database", pg.url("killed")] + args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: Double.random(in: 0.05 ... 0.6))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal, "kill \(k) found the sink already stopped")
            let (height, ok) = try Self.consistent(pg, "killed")
            #expect(ok, "after kill \(k): the tables do not match the checkpoint at \(height)")
            heights.append(height)
        }
        #expect(heights == heights.sorted(), "the checkpoint never moves back: \(heights)")
        #expect(heights.contains { $0 > 0 && $0 < head }, "some kills land in the middle of the backfill: \(heights) of \(head)")
        let finish = try Self.sink(log, pg.url("killed"), args)
        try #require(finish.status == 0, "\(finish.stderr)")
        let tables = try Self.fingerprint(pg, "killed")
        #expect(tables == (try Self.fingerprint(pg, "clean")))

        // Another history for the same database is refused, and nothing is written.
        let other = try run(chaosledgerBinary, ["demo", "--dir", d.sub("other"), "--events", "2000", "--seed", "7"])
        try #require(other.status == 0, "\(other.stderr)")
        let refused = try Self.sink(d.sub("other"), pg.url("killed"), args)
        #expect(refused.status != 0 && refused.stderr.contains("the database does not follow this log"), "\(refused.stdout)\(refused.stderr)")
        #expect(try Self.fingerprint(pg, "killed") == tables)
    }
}

extension SinkTests {
    /// The sink runs the migrations embedded in Sources/LedgerSink/Migrations.swift; they
    /// must be exactly what tools/gen_sink_sql.py makes of schemas/postgres/ now.
    @Test func theEmbeddedMigrationsAreTheSchemaFiles() throws {
        let r = try run("/usr/bin/env", ["python3", repoRoot + "/tools/gen_sink_sql.py", "--print"])
        try #require(r.status == 0, "\(r.stderr)")
        let committed = try String(contentsOfFile: repoRoot + "/Sources/LedgerSink/Migrations.swift", encoding: .utf8)
        #expect(r.stdout == committed, "schemas/postgres changed: run python3 tools/gen_sink_sql.py")
    }
}
