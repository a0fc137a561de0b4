import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import LedgerWorkload
import Testing

/// Tests that run the real `chaosledger` executable in child processes.
@Suite(.serialized) struct ProcessTests {
    /// A child appending blocks is killed with SIGKILL at many random points. After each
    /// kill the log reopens at its last committed block: every acknowledged block is
    /// there, nothing partial is, and the whole log replays.
    @Test func sigkillAtRandomPointsLosesNothingAcknowledged() throws {
        let d = TempDir("crash"); defer { d.cleanup() }
        var rng = SplitMix64(seed: 0xC0FFEE)
        var lastAcked: UInt64 = 0
        let rounds = 12
        for round in 0 ..< rounds {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: chaosledgerBinary)
            p.arguments = ["crash-writer", "--dir", d.path, "--events-per-block", String(5 + rng.next() % 60)]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32(30_000 + rng.next() % 400_000))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal, "round \(round): the writer must have been killed, not exited")
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let acked = text.split(separator: "\n").compactMap { $0.hasPrefix("committed ") ? UInt64($0.dropFirst(10)) : nil }
            if let a = acked.last { lastAcked = a }

            let log = try LedgerLog.openLMDB(path: d.path, mode: .readOnly)
            guard let m = try log.metadata() else { continue }  // killed before genesis was written
            // Every acknowledged block is present; at most one more (committed, not yet announced).
            #expect(m.head.value >= lastAcked, "round \(round): head \(m.head) lost acknowledged block \(lastAcked)")
            #expect(m.head.value <= lastAcked + 1, "round \(round): head \(m.head) beyond the acknowledged \(lastAcked) + 1")
            #expect(try log.block(at: m.head.next) == nil)
            #expect(try log.events(from: m.nextSequence, count: 1).isEmpty, "round \(round): events past the head")
            let report = Replayer(log: log).run().report
            #expect(report.ok, "round \(round): \(String(describing: report.failure))")
            // The index (caught up in the background when killed) still answers right.
            if m.nextSequence.value > 0 {
                for s in [0, m.nextSequence.value / 2, m.nextSequence.value - 1] {
                    let e = try #require(try log.events(from: SequenceNumber(s), count: 1).first)
                    #expect(try log.event(id: e.id)?.sequence == e.sequence, "round \(round): lookup of events[\(s)]")
                }
            }
            lastAcked = m.head.value
        }
        #expect(lastAcked > 0, "the writer never committed a block")
    }

    /// The same seed gives byte-identical logs and the same state roots in two separate processes.
    @Test func demoIsDeterministicAcrossProcesses() throws {
        let d = TempDir("determinism"); defer { d.cleanup() }
        var summaries: [DemoWorkload.Summary] = []
        for name in ["a", "b", "c"] {
            let seed = name == "c" ? "10" : "9"
            let r = try run(chaosledgerBinary, ["demo", "--dir", d.sub(name), "--agents", "20", "--events", "1500", "--seed", seed, "--json"])
            #expect(r.status == 0, "\(r.stderr)")
            summaries.append(try JSONDecoder().decode(DemoWorkload.Summary.self, from: Data(r.stdout.utf8)))
        }
        #expect(summaries[0].stateRoot == summaries[1].stateRoot)
        #expect(summaries[0].genesisHash == summaries[1].genesisHash)
        #expect(summaries[0].stateRoot != summaries[2].stateRoot, "another seed gives another history")
        #expect(summaries[0].invalidAdmitted == 0 && summaries[0].validRefused == 0)

        let a = try LedgerLog.openLMDB(path: d.sub("a"), mode: .readOnly)
        let b = try LedgerLog.openLMDB(path: d.sub("b"), mode: .readOnly)
        let ma = try #require(try a.metadata()), mb = try #require(try b.metadata())
        #expect(ma == mb)
        let ea = try a.events(from: 0, count: 100_000), eb = try b.events(from: 0, count: 100_000)
        #expect(ea.count > 1_000)
        #expect(ea.map(\.envelope.bytes) == eb.map(\.envelope.bytes))
        for h in 1 ... ma.head.value {
            #expect(try a.block(at: Height(h))?.encoded() == b.block(at: Height(h))?.encoded())
        }
        let heights = try a.checkpointHeights(), heightsB = try b.checkpointHeights()
        #expect(!heights.isEmpty && heights == heightsB)  // ~14 blocks, a checkpoint every 10
        for h in heights {
            let ca = try a.checkpoint(atOrBelow: h), cb = try b.checkpoint(atOrBelow: h)
            #expect(ca?.snapshot == cb?.snapshot)
        }
        // And replay in a third process agrees.
        let r = try run(chaosledgerBinary, ["replay", "--dir", d.sub("a"), "--json", "--quiet"])
        let report = try JSONDecoder().decode(ReplayReport.self, from: Data(r.stdout.utf8))
        #expect(report.ok && report.stateRoot == summaries[0].stateRoot)
    }

    /// Swift hashes differently in every process: a seed must still replay the same run,
    /// so the simulator and the replica never let dictionary order reach a decision.
    @Test func simulatorSeedReplaysAcrossProcesses() throws {
        let a = try run(chaosledgerBinary, ["sim", "--seed", "11"])
        let b = try run(chaosledgerBinary, ["sim", "--seed", "11"])
        #expect(a.status == 0, "\(a.stdout)\(a.stderr)")
        let line = { (r: ProcessResult) in r.stdout.split(separator: "\n").first.map(String.init) ?? "" }
        #expect(line(a).contains("digest"))
        #expect(line(a) == line(b))
        // A planted bug fails the run, prints the seed and how to replay it, and exits 1.
        let bad = try run(chaosledgerBinary, ["sim", "--seed", "11", "--bug", "quorumOfTwoF"])
        #expect(bad.status == 1)
        #expect(bad.stdout.contains("seed 11 FAILED") && bad.stdout.contains("replay: chaosledger sim --seed 11 --bug quorumOfTwoF"))
        let bad2 = try run(chaosledgerBinary, ["sim", "--seed", "11", "--bug", "quorumOfTwoF"])
        let untimed = { (r: ProcessResult) in r.stdout.replacingOccurrences(of: #"in [0-9.]+ s"#, with: "", options: .regularExpression) }
        #expect(untimed(bad) == untimed(bad2), "the same failing seed prints the same violations")
    }

    @Test func cliGenesisKeygenInspectStateRebuild() throws {
        let d = TempDir("cli"); defer { d.cleanup() }
        let k = try run(chaosledgerBinary, ["keygen", "--out", d.sub("v.key")])
        #expect(k.status == 0)
        let pub = k.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pub.count == 64)
        let genesis = """
        {"chainId": "cli-test", "timestampMs": 1000,
         "validators": [{"publicKey": "\(pub)", "name": "v", "personality": "lawful", "stake": 5000}],
         "allocations": [{"account": "\(pub)", "amount": 77}]}
        """
        try genesis.write(toFile: d.sub("genesis.json"), atomically: true, encoding: .utf8)
        let g = try run(chaosledgerBinary, ["genesis", "--file", d.sub("genesis.json"), "--dir", d.sub("log")])
        #expect(g.status == 0, "\(g.stderr)")
        let again = try run(chaosledgerBinary, ["genesis", "--file", d.sub("genesis.json"), "--dir", d.sub("log")])
        #expect(again.status != 0, "a second genesis into the same log is refused")
        let st = try run(chaosledgerBinary, ["state", "--dir", d.sub("log"), "--account", pub])
        #expect(st.stdout.contains("\"balance\" : 77"))

        let demo = d.sub("demo")
        #expect(try run(chaosledgerBinary, ["demo", "--dir", demo, "--agents", "10", "--events", "600"]).status == 0)
        let head = try run(chaosledgerBinary, ["inspect", "--dir", demo])
        #expect(head.stdout.contains("\"chainId\" : \"chaosledger-demo\""))
        let block = try run(chaosledgerBinary, ["inspect", "--dir", demo, "--block", "2"])
        #expect(block.status == 0 && block.stdout.contains("\"certificate\""))
        let summary = try run(chaosledgerBinary, ["state", "--dir", demo, "--height", "3"])
        #expect(summary.stdout.contains("\"height\" : 3"))
        let rebuilt = try run(chaosledgerBinary, ["rebuild", "--dir", demo])
        #expect(rebuilt.status == 0 && rebuilt.stdout.contains("checkpoints"))
        let bad = try run(chaosledgerBinary, ["inspect", "--dir", demo, "--event", "zz"])
        #expect(bad.status != 0 && bad.stderr.contains("64 hex digits"))
        #expect(try run(chaosledgerBinary, ["demo", "--dir", demo]).status != 0, "demo refuses a directory that holds a log")
    }
}
