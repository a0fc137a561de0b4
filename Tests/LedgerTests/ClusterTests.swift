import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore
import LedgerCrypto
import Testing

/// Real node processes on loopback (`chaosledger node`), talking over the TCP mesh and
/// served over HTTP: the issue-4 integration scenario, one step after another on one
/// cluster (each step needs the state the previous one left).
@Suite(.serialized) struct ClusterTests {
    final class Cluster: @unchecked Sendable {
        let dir: TempDir
        let meshPort: Int
        let httpPort: Int
        var procs: [Int: Process] = [:]
        let validators = 4

        init() {
            dir = TempDir("cluster")
            // Ten ports (5 mesh, 5 HTTP) that are free now: start from the process id so
            // parallel runs on one machine pick different blocks, and skip busy ones.
            var base = 20_000 + Int(getpid() % 1_000) * 10
            while !(0 ..< 5).allSatisfy({ Self.free(base + $0) && Self.free(base + 10_000 + $0) }) || !Self.free(base + 10_009) {
                base = 20_000 + (base - 20_000 + 10) % 10_000
            }
            meshPort = base
            httpPort = base + 10_000
        }

        /// Whether a TCP port on 127.0.0.1 can be bound now.
        static func free(_ port: Int) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        }

        func cli(_ args: [String]) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chaosledgerBinary)
            p.arguments = args
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }

        func prepare() throws {
            let (s, out) = try cli(["devnet", "--dir", dir.path, "--prepare-only", "--validators", "4", "--personalities", "lawful",
                                    "--mesh-port", "\(meshPort)", "--http-port", "\(httpPort)", "--agents", "2", "--follower"])
            #expect(s == 0, "devnet --prepare-only: \(out)")
        }

        func config(_ i: Int) -> String { i == validators ? dir.sub("follower.json") : dir.sub("node-\(i).json") }

        func start(_ i: Int, _ extra: [String] = []) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chaosledgerBinary)
            // A short view timeout keeps the primary-crash step quick.
            p.arguments = ["node", "--config", config(i), "--consensus-view-timeout-ms", "500"] + extra
            let path = dir.sub("logs/\(i).log")
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            let h = FileHandle(forWritingAtPath: path)!
            h.seekToEndOfFile()
            p.standardOutput = h
            p.standardError = h
            try p.run()
            procs[i] = p
        }

        func kill9(_ i: Int) {
            guard let p = procs[i] else { return }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }

        /// SIGTERM; the exit status (nil: it had to be killed).
        func terminate(_ i: Int) -> Int32? {
            guard let p = procs[i], p.isRunning else { return nil }
            kill(p.processIdentifier, SIGTERM)
            let end = Date().addingTimeInterval(20)
            while p.isRunning, Date() < end { usleep(20_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit(); return nil }
            return p.terminationReason == .exit ? p.terminationStatus : nil
        }

        func stopAll() { for i in procs.keys where procs[i]!.isRunning { _ = terminate(i) } }

        func url(_ i: Int, _ path: String) -> URL { URL(string: "http://127.0.0.1:\(httpPort + i)\(path)")! }

        func http(_ i: Int, _ method: String, _ path: String, body: Data? = nil, type: String = "application/json") async -> (Int, Data) {
            var r = URLRequest(url: url(i, path))
            r.httpMethod = method
            r.timeoutInterval = 30
            if let body { r.httpBody = body; r.setValue(type, forHTTPHeaderField: "Content-Type") }
            guard let (d, resp) = try? await URLSession.shared.data(for: r) else { return (0, Data()) }
            return ((resp as? HTTPURLResponse)?.statusCode ?? 0, d)
        }

        func json(_ i: Int, _ path: String) async -> [String: Any]? {
            let (s, d) = await http(i, "GET", path)
            guard s == 200 else { return nil }
            return try? JSONSerialization.jsonObject(with: d) as? [String: Any]
        }

        func height(_ i: Int) async -> UInt64? { (await json(i, "/v1/status")?["height"] as? NSNumber)?.uint64Value }

        func submit(_ i: Int, _ events: [[UInt8]], wait: Bool = true) async -> (Int, [[String: Any]]) {
            let body = try! JSONSerialization.data(withJSONObject: ["events": events.map { Hex.encode($0) }])
            let (s, d) = await http(i, "POST", "/v1/events?wait=\(wait)&timeoutMs=20000", body: body)
            let rs = ((try? JSONSerialization.jsonObject(with: d)) as? [String: Any])?["receipts"] as? [[String: Any]] ?? []
            return (s, rs)
        }

        func waitUntil(_ what: String, seconds: Double = 150, _ cond: () async -> Bool) async throws {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if await cond() { return }
                // A node that exited on its own (a port taken, a bad config) fails the test now.
                if let (i, p) = procs.first(where: { !$0.value.isRunning && $0.value.terminationReason == .exit }) {
                    Issue.record("node \(i) exited with status \(p.terminationStatus) while waiting for \(what):\n\(logTail(i))")
                    throw CancellationError()
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            Issue.record("timed out after \(seconds) s waiting for \(what); logs in \(dir.path)/logs")
            throw CancellationError()
        }

        /// The devnet's first two agents and its chain.
        func agents() throws -> (SigningKey, SigningKey, ChainID) {
            let genesis = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("genesis.json")))) as! [String: Any]
            return (try KeyFile.read(from: dir.sub("keys/agent-0.key")), try KeyFile.read(from: dir.sub("keys/agent-1.key")),
                    try ChainID(genesis["chainId"] as! String))
        }

        /// `n` signed transfers of 3 from `key`, nonces after `nonce`.
        func transfers(_ n: Int, from key: SigningKey, to: PublicKey, chain: ChainID, nonce: inout UInt64) -> [[UInt8]] {
            (0 ..< n).map { _ in
                nonce += 1
                return EventCrypto.makeEvent(chain: chain, key: key, nonce: nonce, fee: 1, payload: .transfer(to: to, amount: 3, memo: "cluster")).bytes
            }
        }

        func logTail(_ i: Int) -> String {
            let s = (try? String(contentsOfFile: dir.sub("logs/\(i).log"), encoding: .utf8)) ?? ""
            return String(s.suffix(3_000))
        }
    }

    @Test(.timeLimit(.minutes(15))) func validatorsFollowerFaultsAndReplay() async throws {
        let c = Cluster()
        defer { c.stopAll(); if !ProcessInfo.processInfo.environment.keys.contains("KEEP_CLUSTER") { c.dir.cleanup() } }
        try c.prepare()
        let (agent, other, chain) = try c.agents()
        var nonce: UInt64 = 0
        func transfers(_ n: Int) -> [[UInt8]] { c.transfers(n, from: agent, to: other.publicKey, chain: chain, nonce: &nonce) }
        func allCommitted(_ rs: [[String: Any]]) -> Bool { !rs.isEmpty && rs.allSatisfy { $0["status"] as? String == "committed" } }

        // 1. Four validators start, connect and commit.
        for i in 0 ..< 4 { try c.start(i) }
        try await c.waitUntil("all validators ready") {
            var ok = true
            for i in 0 ..< 4 where await c.http(i, "GET", "/ready").0 != 200 { ok = false }
            return ok
        }
        let (s1, r1) = await c.submit(0, transfers(20))
        #expect(s1 == 200 && allCommitted(r1), "first batch: \(s1) \(r1.prefix(2))\n\(c.logTail(0))")

        // Every validator has the batch (a receipt comes from the node that was asked;
        // the others may be a block behind), so node 2 below knows the first event.
        let h1 = await c.height(0) ?? 0
        try await c.waitUntil("all validators at \(h1)") {
            var ok = true
            for i in 0 ..< 4 where (await c.height(i) ?? 0) < h1 { ok = false }
            return ok
        }

        // 2. Bad input over HTTP: each refused with a typed error, nothing changes.
        let before = await c.json(0, "/v1/accounts/\(agent.publicKey.hex)")
        var forged = EventCrypto.makeEvent(chain: chain, key: agent, nonce: nonce + 1, fee: 1,
                                           payload: .transfer(to: other.publicKey, amount: 1_000, memo: "forged")).bytes
        forged[forged.count - 5] ^= 0x40
        let (sf, rf) = await c.submit(1, [forged], wait: false)
        #expect(sf == 422 && rf.first?["code"] as? String == "bad_signature", "forged: \(sf) \(rf)")
        // Ed25519 signing is deterministic: this is byte for byte the first event again.
        let replayed = EventCrypto.makeEvent(chain: chain, key: agent, nonce: 1, fee: 1, payload: .transfer(to: other.publicKey, amount: 3, memo: "cluster")).bytes
        let (sr, rr) = await c.submit(2, [replayed], wait: false)
        #expect(sr == 422 && rr.first?["code"] as? String == "duplicate", "replayed: \(sr) \(rr)")
        let (so, _) = await c.http(1, "POST", "/v1/events", body: Data(repeating: 0x41, count: 6 << 20))
        #expect(so == 413, "oversized body: \(so)")
        let (sm, dm) = await c.http(1, "POST", "/v1/events", body: Data("{\"events\": [\"zz\"]".utf8))
        #expect(sm == 400 && String(decoding: dm, as: UTF8.self).contains("error"), "malformed body: \(sm)")

        // 3. A malformed mesh frame (a length prefix far over the limit, then garbage)
        // is dropped by the node, which keeps committing.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(c.meshPort).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(rc == 0)
        let junk: [UInt8] = [0xFF, 0xFF, 0xFF, 0xF0] + [UInt8](repeating: 0xAB, count: 64)
        _ = junk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var buf = [UInt8](repeating: 0, count: 16)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var closed = false
        for _ in 0 ..< 10 where !closed {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { closed = true }
        }
        #expect(closed, "the node must close a connection that sent a malformed frame")
        close(fd)
        let after = await c.json(0, "/v1/accounts/\(agent.publicKey.hex)")
        #expect((before?["balance"] as? NSNumber) == (after?["balance"] as? NSNumber), "a refused event changed the balance")
        let (s2, r2) = await c.submit(0, transfers(5))
        #expect(s2 == 200 && allCommitted(r2), "after bad input: \(s2) \(r2.prefix(1))")

        // 4. A follower syncs by state transfer and serves reads.
        try c.start(4)
        let target = await c.height(0) ?? 0
        try await c.waitUntil("the follower reaches height \(target)") { (await c.height(4) ?? 0) >= target }
        #expect((await c.json(4, "/v1/accounts/\(agent.publicKey.hex)"))?["nonce"] as? NSNumber == NSNumber(value: nonce))

        // `chaosledger submit` builds, signs and submits events of several kinds (reading
        // the nonce and the chain id from the node) and reports committed receipts.
        let v0 = try KeyFile.read(from: c.dir.sub("keys/validator-0.key")).publicKey.hex
        let url = "http://127.0.0.1:\(c.httpPort + 1)"
        let key1 = c.dir.sub("keys/agent-1.key")
        for args in [["transfer", "--to", agent.publicKey.hex, "--amount", "9", "--memo", "cli"],
                     ["agent.register", "--name", "cli-agent", "--capabilities", "memes,audit"],
                     ["staking.delegate", "--validator", v0, "--amount", "50"],
                     ["alliance.propose", "--targets", v0, "--purpose", "memes"]] {
            let (st, out) = try c.cli(["submit"] + args + ["--node", url, "--key", key1, "--wait"])
            #expect(st == 0 && out.contains("\"committed\""), "submit \(args[0]): \(out)")
        }
        let (bad, badOut) = try c.cli(["submit", "staking.delegate", "--validator", v0, "--amount", "1", "--nonce", "1", "--node", url, "--key", key1])
        #expect(bad == 1 && badOut.contains("stale_nonce"), "a stale nonce must be refused: \(badOut)")

        // 5. SIGKILL a validator: the others go on; on restart it catches up.
        c.kill9(3)
        let (s3, r3) = await c.submit(1, transfers(10))
        #expect(s3 == 200 && allCommitted(r3), "with one validator down: \(s3) \(r3.prefix(1))")
        try c.start(3)
        let h3 = await c.height(0) ?? 0
        try await c.waitUntil("the killed validator catches up to \(h3)") { (await c.height(3) ?? 0) >= h3 }

        // 6. SIGKILL the primary: a view change, then commits resume.
        let status = await c.json(0, "/v1/status")
        let primaryHex = status?["primary"] as? String
        let view0 = (status?["view"] as? NSNumber)?.uint64Value ?? 0
        var primary: Int?
        for i in 0 ..< 4 {
            if let k = await c.json(i, "/v1/status")?["nodeKey"] as? String, k == primaryHex { primary = i }
        }
        #expect(primary != nil, "no node holds the primary key \(primaryHex ?? "nil")")
        let p = primary ?? 0
        c.kill9(p)
        let live = (0 ..< 4).first { $0 != p }!
        let (s4, r4) = await c.submit(live, transfers(5))
        #expect(s4 == 200 && allCommitted(r4), "after the primary died: \(s4) \(r4.prefix(1))\n\(c.logTail(live))")
        let view1 = (await c.json(live, "/v1/status")?["view"] as? NSNumber)?.uint64Value ?? 0
        #expect(view1 > view0, "no view change: view \(view0) → \(view1)")
        try c.start(p)

        // 7. SIGTERM: a clean exit (status 0); the node restarts where it stopped.
        let t = (p + 1) % 4
        try await c.waitUntil("node \(t) ready") { await c.http(t, "GET", "/ready").0 == 200 }
        let ht = await c.height(t) ?? 0
        #expect(c.terminate(t) == 0, "SIGTERM must exit 0\n\(c.logTail(t))")
        try c.start(t)
        try await c.waitUntil("node \(t) back") { (await c.height(t) ?? 0) >= ht }
        let (s5, r5) = await c.submit(t, transfers(5))
        #expect(s5 == 200 && allCommitted(r5), "after the restart: \(s5) \(r5.prefix(1))")
        let top = await c.height(t) ?? 0
        try await c.waitUntil("every node at \(top)") {
            var ok = true
            for i in 0 ... 4 where (await c.height(i) ?? 0) < top { ok = false }
            return ok
        }

        // 8. Every log replays, to the same state root at a common height.
        for i in 0 ... 4 { #expect(c.terminate(i) == 0, "node \(i) did not exit cleanly\n\(c.logTail(i))") }
        var roots = Set<String>()
        for dataDir in ["node-0", "node-1", "node-2", "node-3", "follower"] {
            let (st, out) = try c.cli(["replay", "--dir", c.dir.sub("\(dataDir)/log"), "--to-height", "\(top)", "--json", "--quiet"])
            #expect(st == 0, "replay of \(dataDir) failed: \(out.suffix(500))")
            if let d = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], let r = d["stateRoot"] as? String { roots.insert(r) }
        }
        #expect(roots.count == 1, "state roots differ: \(roots)")
    }

    /// Issue 18: a validator wiped while the others commit state-syncs from their newest
    /// stable checkpoint (each chunk proven against its quorum-signed root), fetches only
    /// the blocks after it, commits again, and its log replays from the snapshot on to
    /// the same state root as a validator that has every block.
    @Test(.timeLimit(.minutes(15))) func aWipedValidatorStateSyncsAndCommitsAgain() async throws {
        let c = Cluster()
        defer { c.stopAll(); if !ProcessInfo.processInfo.environment.keys.contains("KEEP_CLUSTER") { c.dir.cleanup() } }
        try c.prepare()
        let (agent, other, chain) = try c.agents()
        var nonce: UInt64 = 0
        func batch(_ n: Int) -> [[UInt8]] { c.transfers(n, from: agent, to: other.publicKey, chain: chain, nonce: &nonce) }
        for i in 0 ..< 4 { try c.start(i) }
        try await c.waitUntil("all validators ready") {
            var ok = true
            for i in 0 ..< 4 where await c.http(i, "GET", "/ready").0 != 200 { ok = false }
            return ok
        }
        // Blocks until a checkpoint is stable (every 50 blocks in a devnet).
        try await c.waitUntil("a stable checkpoint to sync from", seconds: 300) {
            _ = await c.submit(Int(nonce % 3), batch(3))
            return await c.json(0, "/v1/sync/snapshot") != nil
        }
        // Node 3 is killed and wiped (its log and its consensus records) while the others commit.
        c.kill9(3)
        for d in ["log", "consensus"] { try? FileManager.default.removeItem(atPath: c.dir.sub("node-3/\(d)")) }
        for _ in 0 ..< 10 { _ = await c.submit(0, batch(3)) }
        // First in its list: a peer that lies (a proxy in front of node 0 flipping a bit of
        // every chunk). Its chunk is refused, it is scored down, and the honest ones serve.
        let liarPort = c.httpPort + 9
        let liar = Process()
        liar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        liar.arguments = ["python3", repoRoot + "/tools/lying_proxy.py", "\(liarPort)", "http://127.0.0.1:\(c.httpPort)"]
        liar.standardOutput = FileHandle.nullDevice
        liar.standardError = FileHandle.nullDevice
        try liar.run()
        // SIGKILL: a child of the test process may start with SIGTERM blocked.
        defer { kill(liar.processIdentifier, SIGKILL); liar.waitUntilExit() }
        let peers = (["http://127.0.0.1:\(liarPort)"] + (0 ..< 3).map { "http://127.0.0.1:\(c.httpPort + $0)" }).joined(separator: ",")
        try await c.waitUntil("the lying proxy up") { await c.http(9, "GET", "/health").0 == 200 }
        try c.start(3, ["--state-sync-from", peers])
        try await c.waitUntil("node 3 state-synced and caught up") {
            guard let h3 = await c.height(3), let h0 = await c.height(0) else { return false }
            return h3 + 2 >= h0 && ((try? String(contentsOfFile: c.dir.sub("logs/3.log"), encoding: .utf8)) ?? "").contains("state synced")
        }
        let log3 = (try? String(contentsOfFile: c.dir.sub("logs/3.log"), encoding: .utf8)) ?? ""
        let refusal = log3.split(separator: "\n").first { $0.contains("state sync: chunk refused") }
        #expect(refusal?.contains("peer=http://127.0.0.1:\(liarPort)") == true, "the lying peer's chunk was not refused:\n\(c.logTail(3))")
        let offered = try #require(await c.json(0, "/v1/sync/snapshot"))
        // It commits again: events sent to it are committed, and it keeps up.
        for _ in 0 ..< 5 {
            let (st, rs) = await c.submit(3, batch(3))
            #expect(st == 200 && rs.allSatisfy { $0["status"] as? String == "committed" }, "\(st) \(rs.prefix(1))\n\(c.logTail(3))")
        }
        let top = await c.height(0) ?? 0
        try await c.waitUntil("node 3 at \(top)") { (await c.height(3) ?? 0) >= top }
        for i in 0 ..< 4 { #expect(c.terminate(i) == 0, "node \(i) did not exit cleanly\n\(c.logTail(i))") }
        // Its log starts at the snapshot and replays, trusting the genesis alone, to the
        // root of a validator that has every block.
        var roots = Set<String>()
        for dataDir in ["node-0", "node-3"] {
            let (st, out) = try c.cli(["replay", "--dir", c.dir.sub("\(dataDir)/log"), "--to-height", "\(top)", "--json", "--quiet"])
            #expect(st == 0, "replay of \(dataDir) failed: \(out.suffix(500))")
            let d = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
            if let r = d["stateRoot"] as? String { roots.insert(r) }
            if dataDir == "node-3" {
                let from = (d["fromHeight"] as? NSNumber)?.uint64Value ?? 0
                #expect(from > 0 && from <= (offered["height"] as? NSNumber)?.uint64Value ?? 0, "node 3's log starts at its base: \(from)")
            }
        }
        #expect(roots.count == 1, "state roots differ: \(roots)")
    }
}
