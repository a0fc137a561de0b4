import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerStore
import Logging
import Testing

/// A node whose disk fills (issue 16): no crash, one clear line, reads go on with
/// `/ready` at 503 and submissions refused, and it resumes by itself when space
/// returns; its log replays. It used to stop with `fatalError` (SIGILL, exit 132).
@Suite(.serialized) struct DiskFullTests {
    @Test func aFullDiskPausesTheNodeAndItResumesWhenSpaceReturns() async throws {
        let d = TempDir("diskfull"); defer { d.cleanup() }
        let mnt = d.sub("fs")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt])
        try #require(mounted.status == 0, "mount failed: \(mounted.stderr) — this test needs root")
        defer { _ = try? run("/bin/umount", ["-l", mnt]) }

        let validator = SigningKey.derived("diskfull-validator"), client = SigningKey.derived("diskfull-client")
        var p = ChainParameters()
        p.checkpointInterval = 8
        let genesis = try Genesis(chainID: try ChainID("diskfull"), timestampMs: 1_000, parameters: p,
                                  validators: [.init(key: validator.publicKey, name: "v", personality: "lawful", stake: 10_000)],
                                  allocations: [.init(account: client.publicKey, amount: 1_000_000_000), .init(account: validator.publicKey, amount: 1_000)])
        let log = try LedgerLog.openLMDB(path: mnt + "/log")
        _ = try log.initialize(genesis: genesis)
        let store = try RecordStore.open(path: mnt + "/consensus")
        // Most of the filesystem taken by something else: the node has ~1 MiB to write.
        let filler = mnt + "/filler"
        _ = try run("/usr/bin/fallocate", ["-l", "2500k", filler])
        var o = NodeOptions(role: .validator, keys: [validator], operatorKey: validator)
        o.dataDir = mnt
        o.diskWarnBytes = 3 << 20
        let node = try NodeDriver(log: log, store: store, options: o, logger: Logger(label: "diskfull"))
        node.start()

        func transfer(_ n: UInt64) -> [UInt8] {
            EventCrypto.makeEvent(chain: genesis.chainID, key: client, nonce: n, fee: 10,
                                  payload: .transfer(to: validator.publicKey, amount: 1, memo: String(repeating: "z", count: 200))).bytes
        }
        // Write until the disk is full: the node stops being ready and refuses events.
        var nonce: UInt64 = 0
        var refused: Receipt?
        for _ in 0 ..< 400 where refused == nil {
            let batch = (1 ... 50).map { _ in nonce += 1; return transfer(nonce) }
            let rs = await node.submit(batch, waitCommitted: true, timeoutMs: 2_000)
            refused = rs.first { $0.code == "disk_full" }
            if await !node.status().ready { break }
        }
        let deadline = Date().addingTimeInterval(300)
        while await node.status().ready, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let full = await node.status()
        #expect(!full.ready, "the node stayed ready on a full disk")
        let r = await node.submit([transfer(nonce + 1)], waitCommitted: false, timeoutMs: 0)[0]
        #expect(r.code == "disk_full", "\(r)")
        let heightWhenFull = full.height

        // Space returns: the node resumes by itself and commits again.
        try FileManager.default.removeItem(atPath: filler)
        let back = Date().addingTimeInterval(300)
        while await !node.status().ready, Date() < back { try await Task.sleep(for: .milliseconds(50)) }
        #expect(await node.status().ready, "the node did not resume when space returned")
        // Its next nonce, whatever the last committed one was.
        let committedNonce = await (try? node.state(at: nil))?.accounts[client.publicKey]?.nonce ?? 0
        let after = await node.submit([transfer(committedNonce + 1)], waitCommitted: true, timeoutMs: 300_000)[0]
        #expect(after.status == .committed, "\(after)")
        await node.stop(drainMs: 0)
        let report = Replayer(log: log).run().report
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.blocks > heightWhenFull.value)
        log.close()
    }
}
