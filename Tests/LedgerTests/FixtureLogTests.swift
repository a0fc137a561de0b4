import Foundation
import LedgerAudit
import LedgerCore
import LedgerProjections
import LedgerStore
import Testing

/// A log written by the release before the state tree (`Tests/fixtures/flat-log`:
/// `chaosledger demo --agents 8 --events 600 --seed 7` at commit 8e17b9f). Chains whose
/// genesis predates version 4 commit their state flat, and every byte of such a log must
/// still replay to the root that release printed.
@Suite struct FixtureLogTests {
    static let root = "ef26e581f77ba0883d246604a9ac8c6402f4a1996668dfbe107e54cc2a256da3"

    func copy() throws -> TempDir {
        let d = TempDir("fixture")
        try FileManager.default.copyItem(atPath: repoRoot + "/Tests/fixtures/flat-log/data.mdb", toPath: d.sub("data.mdb"))
        return d
    }

    @Test func aLogFromBeforeTheStateTreeReplaysByteForByte() throws {
        let d = try copy(); defer { d.cleanup() }
        let log = try LedgerLog.openLMDB(path: d.path)
        defer { log.close() }
        let (report, state) = Replayer(log: log).run()
        #expect(report.ok, "\(String(describing: report.failure))")
        #expect(report.blocks == 15 && report.events == 594 && report.stateRootsCompared == 15)
        #expect(report.stateRoot == Self.root)
        let s = try #require(state)
        #expect(s.commitment == .flat && s.sealedTree == nil)
        #expect(try Genesis.decode(try #require(try log.metadata()).genesisBytes).encodedVersion == 3)
    }

    @Test func itsCheckpointsRebuildToTheSameRoot() throws {
        let d = try copy(); defer { d.cleanup() }
        let log = try LedgerLog.openLMDB(path: d.path)
        defer { log.close() }
        var (state, stats) = try StateLoader.rebuild(log)
        #expect(stats.checkpointsWritten >= 1)
        #expect(state.sealRoot().hex == Self.root)
        let (loaded, _) = try StateLoader.load(log)
        #expect(loaded.stateRoot().hex == Self.root && loaded == state)
    }
}
