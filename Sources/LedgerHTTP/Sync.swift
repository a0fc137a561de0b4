import Foundation
import Hummingbird
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import LedgerTree
import Synchronization

/// The state a node offers for state sync: one chunker, for the newest stable
/// checkpoint it was asked about, built once (sorting the state's leaves) and shared.
final class SyncCache: Sendable {
    private let current = Mutex<StateChunker?>(nil)

    func chunker(at h: Height, _ load: () async throws(APIError) -> LedgerState) async throws(APIError) -> StateChunker {
        if let c = current.withLock({ $0 }), c.height == h { return c }
        guard let c = StateChunker(state: try await load()) else {
            throw .badRequest("sync_unsupported", "this chain commits its state flat: there is no tree to prove chunks against")
        }
        current.withLock { $0 = c }
        return c
    }
}

extension Handlers {
    /// The newest stable checkpoint whose state this node still has, among the last few.
    func syncHeight() async throws(APIError) -> (Height, [UInt8]) {
        guard let meta = try read({ () throws(StoreError) in try service.log.metadata() }) else {
            throw .service(.unavailable("the log is not initialised"))
        }
        let heights = try read { () throws(StoreError) in
            try service.log.checkpointCertificateHeights(from: Height(meta.head.value > 1_024 ? meta.head.value - 1_024 : 0), limit: .max)
        }
        guard let h = heights.last, let bytes = try read({ () throws(StoreError) in try service.log.checkpointCertificate(at: h) }) else {
            throw .notFound("no_checkpoint", "this node has no stable checkpoint yet")
        }
        return (h, bytes)
    }

    /// `GET /v1/sync/snapshot`: what a syncing node needs to start (FORMAT.md §15.1).
    func syncSnapshot() async throws(APIError) -> Response {
        let (h, certificate) = try await syncHeight()
        let c = try await syncCache.chunker(at: h) { () throws(APIError) in try await stateAt(h) }
        let next: UInt64
        if let b = try read({ () throws(StoreError) in try service.log.block(at: h) }) {
            next = b.firstSequence.value + UInt64(b.header.eventCount)
        } else if let base = try read({ () throws(StoreError) in try service.log.base() }), base.height == h {
            next = base.nextSequence.value
        } else {
            throw .service(.unavailable("block \(h.value) is missing"))
        }
        return JSONResponse.make([
            "height": h.value, "stateRoot": c.root.hex, "certificate": Hex.encode(certificate),
            "leaves": c.leafCount, "depth": c.depth, "chunks": 1 << c.depth, "nextSequence": next,
        ])
    }

    /// `GET /v1/sync/chunks?height=&depth=&index=`: one chunk's §15.2 bytes.
    func syncChunk(_ request: Request) async throws(APIError) -> Response {
        guard let height = try Input.uint(request, "height") else { throw .badParameter("height", "", expected: "a checkpoint height") }
        let depth = try Input.uint(request, "depth") ?? 0
        guard depth <= UInt64(TreeChunk.depthMax) else { throw .badParameter("depth", "\(depth)", expected: "at most \(TreeChunk.depthMax)") }
        let index = try Input.uint(request, "index") ?? 0
        guard index < UInt64(1) << depth else { throw .badParameter("index", "\(index)", expected: "below 2^depth = \(1 << depth)") }
        let h = Height(height)
        guard try read({ () throws(StoreError) in try service.log.checkpointCertificate(at: h) }) != nil else {
            throw .notFound("no_checkpoint", "no stable checkpoint at height \(height)")
        }
        let c = try await syncCache.chunker(at: h) { () throws(APIError) in try await stateAt(h) }
        let bytes = c.chunk(depth: Int(depth), index: UInt32(index)).encoded()
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func stateAt(_ h: Height) async throws(APIError) -> LedgerState {
        do { return try await service.state(at: h) } catch { throw .service(error) }
    }
}
