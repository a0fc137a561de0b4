import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerCore
import LedgerCrypto
import Testing

/// The agent in another language (`tools/example_agent.py`: Python, PyNaCl, written from
/// `schemas/` alone) against a real node process: it builds, signs, submits and reads back
/// its events and exits 0 only when its own checks held; this test then checks the node's
/// side itself, over HTTP and by replaying the log. python3 with PyNaCl is required
/// (`tools/setup.sh` installs it): without them the tests fail, never skip.
@Suite(.serialized) struct ExampleAgentTests {
    static let script = repoRoot + "/tools/example_agent.py"

    /// Whether python3 with PyNaCl runs; if not, a recorded failure saying how to get them.
    static func pythonReady() -> Bool {
        let probe = try? run("/usr/bin/env", ["python3", "-c", "import nacl.signing"])
        guard let probe, probe.status == 0 else {
            Issue.record("""
                tools/example_agent.py needs python3 with PyNaCl: run tools/setup.sh \
                (python3 -m pip install pynacl). \(probe.map { $0.stderr } ?? "python3 did not start")
                """)
            return false
        }
        return true
    }

    static func python(_ args: [String]) throws -> ProcessResult { try run("/usr/bin/env", ["python3"] + args) }

    /// The agent's codec against the vectors: every event decoded, re-encoded and re-signed byte for byte.
    @Test func codecMatchesTheVectors() throws {
        guard Self.pythonReady() else { return }
        let r = try Self.python([Self.script, "--self-test", repoRoot + "/schemas/vectors.json"])
        #expect(r.status == 0, "self-test failed:\n\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("re-signed byte for byte"), "\(r.stdout)")
    }

    @Test(.timeLimit(.minutes(5))) func agentCommitsItsEventsAndReadsThemBack() async throws {
        guard Self.pythonReady() else { return }
        let dir = TempDir("example-agent")
        var node: Process?
        defer {
            if let node, node.isRunning { kill(node.processIdentifier, SIGKILL); node.waitUntilExit() }
            dir.cleanup()
        }
        // A mesh and an HTTP port that are free now, in a range ClusterTests does not use.
        var base = 40_000 + Int(getpid() % 1_000) * 2
        while !(ClusterTests.Cluster.free(base) && ClusterTests.Cluster.free(base + 1)) { base = 40_000 + (base - 40_000 + 2) % 2_000 }
        let http = base + 1
        // One validator (a quorum of one) and two funded agent keys in its genesis.
        let prep = try run(chaosledgerBinary, ["devnet", "--dir", dir.path, "--prepare-only", "--validators", "1", "--personalities", "lawful",
                                               "--mesh-port", "\(base)", "--http-port", "\(http)", "--agents", "4"])
        try #require(prep.status == 0, "devnet --prepare-only: \(prep.stdout)\(prep.stderr)")
        let agent = try KeyFile.read(from: dir.sub("keys/agent-0.key")).publicKey.hex
        let other = try KeyFile.read(from: dir.sub("keys/agent-1.key")).publicKey.hex
        let validator = try KeyFile.read(from: dir.sub("keys/validator-0.key")).publicKey.hex
        var genesis = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("genesis.json")))) as? [String: Any])
        // Epochs of two blocks, so that the agent's few blocks make a checkpoint stable and
        // the light client has a certificate to check.
        var parameters = try #require(genesis["parameters"] as? [String: Any])
        parameters["checkpointInterval"] = 2
        genesis["parameters"] = parameters
        try JSONSerialization.data(withJSONObject: genesis, options: [.sortedKeys]).write(to: URL(fileURLWithPath: dir.sub("genesis.json")))
        var allocated: [String: UInt64] = [:]
        for a in genesis["allocations"] as? [[String: Any]] ?? [] {
            allocated[a["account"] as? String ?? ""] = (a["amount"] as? NSNumber)?.uint64Value
        }
        let funded = try #require(allocated[agent]), otherFunded = try #require(allocated[other])

        let p = Process()
        p.executableURL = URL(fileURLWithPath: chaosledgerBinary)
        p.arguments = ["node", "--config", dir.sub("node-0.json")]
        let logPath = dir.sub("logs/node-0.log")
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let logFile = try #require(FileHandle(forWritingAtPath: logPath))
        p.standardOutput = logFile
        p.standardError = logFile
        try p.run()
        node = p
        func logTail() -> String { String(((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(3_000)) }
        let url = "http://127.0.0.1:\(http)"
        let readyBy = Date().addingTimeInterval(60)
        while await Self.get(url + "/ready").0 != 200 {
            try #require(p.isRunning, "the node exited with status \(p.terminationStatus):\n\(logTail())")
            try #require(Date() < readyBy, "the node was not ready within 60 s:\n\(logTail())")
            try await Task.sleep(for: .milliseconds(100))
        }

        let amount: UInt64 = 777
        let started = Date()
        let r = try Self.python([Self.script, "--node", url, "--key", dir.sub("keys/agent-0.key"), "--name", "swift-test-agent",
                                 "--capabilities", "compute,memes", "--to", other, "--amount", "\(amount)", "--timeout", "30",
                                 "--peer-key", dir.sub("keys/agent-1.key")])
        let seconds = Date().timeIntervalSince(started)
        try #require(r.status == 0, "example_agent.py exited \(r.status):\n\(r.stdout)\(r.stderr)\nnode log:\n\(logTail())")
        #expect(r.stdout.contains("ok: 4 events committed"), "\(r.stdout)")
        #expect(r.stdout.contains("opened by its recipient, sent by"), "\(r.stdout)")
        print("example agent ran in \(String(format: "%.1f", seconds)) s")

        // The node's side: exactly the agent's four events and its message, in nonce order, each committed.
        let stream = try #require(await Self.json(url + "/v1/streams/account/\(agent)"))
        let events = stream["events"] as? [[String: Any]] ?? []
        #expect(events.map { $0["kind"] as? String ?? "" } == ["agent.register", "transfer", "alliance.propose", "meme.post", "message.send"], "\(events)")
        #expect(events.map { ($0["nonce"] as? NSNumber)?.intValue ?? 0 } == [1, 2, 3, 4, 5])
        #expect(events.allSatisfy { $0["author"] as? String == agent })
        for e in events {
            let id = e["id"] as? String ?? ""
            let st = await Self.json(url + "/v1/events/\(id)")
            #expect(st?["status"] as? String == "committed", "event \(id): \(String(describing: st))")
        }
        let fees = events.reduce(UInt64(0)) { $0 + ((($1["fee"] as? NSNumber)?.uint64Value) ?? 0) }
        #expect(fees > 0)
        let transfer = events.first { $0["kind"] as? String == "transfer" }?["payload"] as? [String: Any]
        #expect(transfer?["to"] as? String == other && (transfer?["amount"] as? NSNumber)?.uint64Value == amount, "\(String(describing: transfer))")

        // Balances from the genesis allocations and the committed fees alone.
        let account = await Self.json(url + "/v1/accounts/\(agent)")
        #expect((account?["nonce"] as? NSNumber)?.uint64Value == 5, "\(String(describing: account))")
        // The registration locked the agent bond (rule version 3).
        let bond = ((await Self.json(url + "/v1/economy"))?["trust"] as? [String: Any])?["agentBond"] as? NSNumber
        #expect(bond != nil)
        #expect((account?["balance"] as? NSNumber)?.uint64Value == funded - fees - amount - (bond?.uint64Value ?? 0), "\(String(describing: account))")
        // The recipient registered itself to receive the message: its one event's fee and its bond.
        let recipient = await Self.json(url + "/v1/accounts/\(other)")
        let otherEvents = (await Self.json(url + "/v1/streams/agent/\(other)"))?["events"] as? [[String: Any]] ?? []
        #expect(otherEvents.map { $0["kind"] as? String ?? "" } == ["agent.register", "message.send"], "\(otherEvents)")
        let otherFee = (otherEvents.first?["fee"] as? NSNumber)?.uint64Value ?? 0
        #expect((recipient?["balance"] as? NSNumber)?.uint64Value == otherFunded + amount - otherFee - (bond?.uint64Value ?? 0),
                "\(String(describing: recipient))")

        let profile = await Self.json(url + "/v1/agents/\(agent)")
        let fields = profile?["profile"] as? [String: Any]
        #expect(profile?["active"] as? Bool == true && fields?["name"] as? String == "swift-test-agent", "\(String(describing: profile))")
        #expect(fields?["capabilities"] as? [String] == ["compute", "memes"], "\(String(describing: profile))")

        let memeID = try #require(events.first { $0["kind"] as? String == "meme.post" }?["id"] as? String)
        let meme = await Self.json(url + "/v1/memes/\(memeID)")
        #expect(meme?["author"] as? String == agent && meme?["tags"] as? [String] == ["python", "gm"], "\(String(describing: meme))")
        let allianceID = try #require(events.first { $0["kind"] as? String == "alliance.propose" }?["id"] as? String)
        let alliance = await Self.json(url + "/v1/alliances/\(allianceID)")
        #expect(alliance?["proposer"] as? String == agent && alliance?["targets"] as? [String] == [validator], "\(String(describing: alliance))")

        // The Python light client (tools/lightclient.py, from schemas/ alone), trusting only
        // the genesis hash computed here from the genesis file: five entity kinds and an
        // event and a stream verify, and every kind of tampering is refused with its reason.
        let g = try run(chaosledgerBinary, ["genesis", "--file", dir.sub("genesis.json"), "--dir", dir.sub("genesis-check")])
        let genesisHash = try #require(g.stdout.split(separator: " ").dropFirst().first.map(String.init), "\(g.stdout)\(g.stderr)")
        let light = try Self.python([repoRoot + "/tools/lightclient.py", "--node", url, "--genesis-hash", genesisHash,
                                     "check", "--agent", agent, "--validator", validator])
        #expect(light.status == 0, "lightclient.py check exited \(light.status):\n\(light.stdout)\(light.stderr)")
        #expect(light.stdout.contains("ok: 5 entity kinds, an event and a stream verified; "), "\(light.stdout)")
        #expect(light.stdout.contains(" checkpoint certificates verified; a state-sync snapshot of ") && light.stdout.contains(" leaves verified; 10 tamperings refused")
                && !light.stdout.contains("; 0 checkpoint"), "\(light.stdout)")
        print(light.stdout)
        let mine = try Self.python([repoRoot + "/tools/lightclient.py", "--node", url, "--genesis-hash", genesisHash, "account", agent])
        #expect(mine.status == 0 && mine.stdout.contains("ok: account"), "\(mine.stdout)\(mine.stderr)")
        let wrongTrust = try Self.python([repoRoot + "/tools/lightclient.py", "--node", url, "--genesis-hash", String(repeating: "0", count: 64),
                                          "account", agent])
        #expect(wrongTrust.status == 1 && wrongTrust.stdout.contains("not the trusted"), "\(wrongTrust.stdout)\(wrongTrust.stderr)")

        // `chaosledger verify`: the same checks offline, from the saved answers.
        let saved = [("powers.json", "/v1/light/powers?from=1"), ("account.json", "/v1/accounts/\(agent)?proof=true"),
                     ("event.json", "/v1/events/\(memeID)?proof=true"), ("stream.json", "/v1/streams/account/\(agent)?proof=true"),
                     ("stream-events.json", "/v1/streams/account/\(agent)?limit=500")]
        for (file, path) in saved {
            let (status, body) = await Self.get(url + path)
            #expect(status == 200, "\(path)")
            try body.write(to: URL(fileURLWithPath: dir.sub(file)))
        }
        for file in ["account.json", "event.json", "stream.json"] {
            let v = try run(chaosledgerBinary, ["verify", "--genesis", dir.sub("genesis.json"), "--genesis-hash", genesisHash,
                                                "--powers", dir.sub("powers.json"), "--proof", dir.sub(file),
                                                "--stream-events", dir.sub("stream-events.json")])
            #expect(v.status == 0 && v.stdout.contains("ok: "), "verify \(file): \(v.stdout)\(v.stderr)")
        }
        // The stream's events with one left out are refused.
        var page = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("stream-events.json")))) as? [String: Any])
        var listed = try #require(page["events"] as? [[String: Any]])
        #expect(listed.count >= 2)
        listed.remove(at: 0)
        page["events"] = listed
        try JSONSerialization.data(withJSONObject: page).write(to: URL(fileURLWithPath: dir.sub("stream-short.json")))
        let short = try run(chaosledgerBinary, ["verify", "--genesis", dir.sub("genesis.json"), "--powers", dir.sub("powers.json"),
                                                "--proof", dir.sub("stream.json"), "--stream-events", dir.sub("stream-short.json")])
        #expect(short.status == 1 && short.stdout.contains("REFUSED: the stream's events are not the proven ones"), "\(short.stdout)\(short.stderr)")
        var answer = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.sub("account.json")))) as? [String: Any])
        var proofHex = Array(try #require(answer["proof"] as? String))
        proofHex[proofHex.count - 1] = proofHex[proofHex.count - 1] == "0" ? "1" : "0"
        answer["proof"] = String(proofHex)
        try JSONSerialization.data(withJSONObject: answer).write(to: URL(fileURLWithPath: dir.sub("tampered.json")))
        let refused = try run(chaosledgerBinary, ["verify", "--genesis", dir.sub("genesis.json"), "--powers", dir.sub("powers.json"),
                                                  "--proof", dir.sub("tampered.json")])
        #expect(refused.status == 1 && refused.stdout.contains("REFUSED: the proof does not lead"), "\(refused.stdout)\(refused.stderr)")

        // An LLM agent's view (issue 21): `chaosledger mcp` driven by the reference Python
        // MCP client (PyPI's `mcp`, in the venv tools/setup.sh makes) lists its tools,
        // reads an account, is refused a job post before registering (the message names
        // the rule and the tool to call), registers, posts and funds a job, reads it back
        // funded with its proof, and is refused a second funding; then a worker agent on a
        // second server is found, accepts, submits both milestones, is paid, both rate, and
        // the client's sealed message reaches the worker: every tool, each write committed.
        let mcp = try run(repoRoot + "/.build/mcp-venv/bin/python", [repoRoot + "/tools/mcp_check.py", "--bin", chaosledgerBinary,
                                                                   "--node", url, "--key", dir.sub("keys/agent-2.key"),
                                                                   "--worker-key", dir.sub("keys/agent-3.key")])
        #expect(mcp.status == 0, "mcp_check.py exited \(mcp.status):\n\(mcp.stdout)\(mcp.stderr)")
        let steps = mcp.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(steps.count == 22 && steps.allSatisfy { $0["ok"] as? Bool == true }, "\(mcp.stdout)")

        // The node stops cleanly, and its log — with the Python-signed events — replays.
        kill(p.processIdentifier, SIGTERM)
        let stopBy = Date().addingTimeInterval(20)
        while p.isRunning, Date() < stopBy { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!p.isRunning && p.terminationStatus == 0, "SIGTERM must exit 0:\n\(logTail())")
        let replay = try run(chaosledgerBinary, ["replay", "--dir", dir.sub("node-0/log"), "--json", "--quiet"])
        #expect(replay.status == 0, "replay: \(replay.stdout.suffix(500))\(replay.stderr.suffix(500))")
    }

    static func get(_ url: String) async -> (Int, Data) {
        var r = URLRequest(url: URL(string: url)!)
        r.timeoutInterval = 10
        guard let (d, resp) = try? await URLSession.shared.data(for: r) else { return (0, Data()) }
        return ((resp as? HTTPURLResponse)?.statusCode ?? 0, d)
    }

    static func json(_ url: String) async -> [String: Any]? {
        let (s, d) = await get(url)
        guard s == 200 else { return nil }
        return try? JSONSerialization.jsonObject(with: d) as? [String: Any]
    }
}
