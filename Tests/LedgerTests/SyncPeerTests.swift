import Foundation
import LedgerCore
import Testing
@testable import chaosledger

/// The HTTP side of state sync against peers that do not play fair (`tools/lying_proxy.py`):
/// a chunk whose bytes never end is cut off at the chunk limit, and one that trickles is
/// given up at the deadline, each a failed request for the sync to score, never the
/// node's memory or its whole sync.
@Suite(.serialized) struct SyncPeerTests {
    /// A misbehaving peer on a free port; killed when the test ends.
    final class Peer {
        let process = Process()
        let port: Int
        init(_ mode: String) throws {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", repoRoot + "/tools/lying_proxy.py", "0", "http://127.0.0.1:1", mode]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var line = Data()
            while let b = try out.fileHandleForReading.read(upToCount: 1), !b.isEmpty, b != Data("\n".utf8) { line += b }
            port = Int(String(decoding: line, as: UTF8.self)) ?? 0
        }
        deinit { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// Cut off by size: the error says which bound fired (a deadline throws `TooSlow`),
    /// so no wall-clock assertion is needed on a shared machine.
    @Test(.timeLimit(.minutes(5))) func anEndlessChunkIsCutOffAtTheLimit() async throws {
        let p = try Peer("huge")
        let peer = HTTPSnapshotPeer("http://127.0.0.1:\(p.port)", deadline: 240)
        await #expect(throws: HTTPSnapshotPeer.TooLarge.self) { _ = try await peer.chunk(height: 50, depth: 0, index: 0) }
    }

    @Test(.timeLimit(.minutes(5))) func aTricklingChunkIsGivenUpAtTheDeadline() async throws {
        let p = try Peer("trickle")
        let peer = HTTPSnapshotPeer("http://127.0.0.1:\(p.port)", deadline: 3)
        await #expect(throws: HTTPSnapshotPeer.TooSlow.self) { _ = try await peer.chunk(height: 50, depth: 0, index: 0) }
    }
}
