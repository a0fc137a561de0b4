import Foundation
import Hummingbird
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore

/// Proofs for light clients (schemas/FORMAT.md §14): an entity or event with the path to
/// a root in a version 2 header, that header and the commit certificate signing it; and
/// the headers at which the validators' power changes, so a client can walk from the
/// genesis to any height trusting no node.
extension Handlers {
    /// `?proof=true` on an entity read: the entity (or its absence), the state proof at
    /// the state's height, the header of that height and its certificate.
    func entityProof(_ request: Request, _ kind: LeafKind, _ k: Bytes32, _ rendered: (LedgerState) -> [String: Any]?) async throws(APIError) -> Response {
        let leaf: StateLeaf
        do { leaf = try StateLeaf(kind, k.bytes) } catch { throw .badRequest("bad_id", error.description) }
        return JSONResponse.make(try await leafProof(request, leaf, rendered).body)
    }

    /// `/v1/streams/{kind}/{key}?proof=true`: the stream's count and hash chain (§7.3)
    /// proven at a height, and the sequence number that ends that height's block: the
    /// client reads the stream's events before it and checks it got them all, in order.
    func streamProof(_ request: Request, _ key: StreamKey) async throws(APIError) -> Response {
        let leaf: StateLeaf
        do { leaf = try StateLeaf(.stream, key.bytes) } catch { throw .badRequest("bad_id", error.description) }
        var (d, height) = try await leafProof(request, leaf) { s in
            let h = s.streamHead(key)
            return ["stream": key.description, "count": h.count, "head": h.head.hex]
        }
        guard let b = try read({ () throws(StoreError) in try service.log.block(at: height) }) else {
            throw .notFound("block_not_found", "no block at height \(height.value)")
        }
        // Every event of the log at or before this block has a smaller sequence number.
        d["endSequence"] = b.firstSequence.value + UInt64(b.header.eventCount)
        return JSONResponse.make(d)
    }

    /// A leaf's proof answer, and the height it proves the leaf at.
    func leafProof(_ request: Request, _ leaf: StateLeaf, _ rendered: (LedgerState) -> [String: Any]?) async throws(APIError) -> (body: [String: Any], height: Height) {
        let height = try Input.height(request)
        let s: LedgerState
        do { s = try await service.state(at: height) } catch { throw .service(error) }
        let kind = leaf.kind
        guard let proof = s.proof(leaf) else {
            throw .badRequest("proofs_unsupported", "this chain commits its state flat (genesis before version 4): it has no state tree")
        }
        var d = try signedHeader(s.height)
        d["leaf"] = ["kind": kind.name, "kindCode": Int(kind.rawValue), "id": Hex.encode(leaf.id)]
        d["found"] = proof.value != nil
        d["entity"] = rendered(s) ?? NSNull()
        d["value"] = proof.value.map(Hex.encode) ?? NSNull()
        d["proof"] = Hex.encode(proof.encoded())
        return (d, s.height)
    }

    /// The header and certificate of block `h`, which a proof at height `h` is checked against.
    func signedHeader(_ h: Height) throws(APIError) -> [String: Any] {
        guard h.value >= 1 else {
            throw .badRequest("proof_unavailable", "the genesis state has no header to prove against: ask for height 1 or later")
        }
        guard let b = try read({ () throws(StoreError) in try service.log.block(at: h) }) else {
            throw .notFound("block_not_found", "no block at height \(h.value)")
        }
        return ["height": h.value, "header": Hex.encode(b.headerBytes), "blockHash": Blake2b.hash(b.headerBytes).hex,
                "certificate": Hex.encode(b.certificate.encoded())]
    }

    /// `/v1/events/{id}?proof=true`: the RFC 6962 path from the event to its block's events root.
    func eventProof(_ e: LoggedEvent, height: Height) throws(APIError) -> [String: Any] {
        guard let b = try read({ () throws(StoreError) in try service.log.block(at: height) }) else {
            throw .service(.unavailable("block \(height.value) is not readable yet"))
        }
        let events = try read { () throws(StoreError) in try service.log.events(from: b.firstSequence, count: Int(b.header.eventCount)) }
        let ids = events.map(\.id)
        guard let index = ids.firstIndex(of: e.id) else { throw .service(.unavailable("event \(e.id.short) is not in block \(height.value)")) }
        let path = EventCrypto.eventsPath(ids, index: index)
        var w = ByteWriter(capacity: 10 + path.count * 32)
        w.u32(UInt32(index)); w.u32(UInt32(ids.count)); w.u16(UInt16(path.count))
        for p in path { w.b32(p) }
        var d = try signedHeader(height)
        d["index"] = index
        d["count"] = ids.count
        d["path"] = Hex.encode(w.bytes)
        return d
    }

    /// `/v1/light/powers?from=H`: every block at or after H whose header's next power
    /// hash differs from its parent's (the first block of a new power), with its header,
    /// its certificate and the new power. Power only changes at epoch ends.
    func lightPowers(_ request: Request) async throws(APIError) -> Response {
        let from = max(1, try Input.uint(request, "from") ?? 1)
        let limit = try Input.limit(request)
        guard let meta = try read({ () throws(StoreError) in try service.log.metadata() }) else {
            throw .service(.unavailable("the log is not initialised"))
        }
        let genesis: Genesis
        do { genesis = try Genesis.decode(meta.genesisBytes) } catch { throw .service(.unavailable(error.description)) }
        guard genesis.stateCommitment == StateCommitmentRule.tree else {
            throw .badRequest("proofs_unsupported", "this chain commits its state flat (genesis before version 4): its headers carry no power hash")
        }
        let k = genesis.parameters.checkpointInterval
        var out: [[String: Any]] = []
        // The epoch ends at or after `from`: K, 2K, …
        let genesisPower = LedgerState.powerHash(LedgerState.genesisPower(genesis), Sodium())
        var h = ((from + k - 1) / k) * k
        // A state-synced node has no blocks up to its base: it serves the power changes it
        // was anchored with (and checked) instead.
        if let base = try read({ () throws(StoreError) in try service.log.base() }) {
            let changes: [AuditBundle.PowerChange]
            do { changes = try AuditBundle.PowerChange.decode(base.anchor, upTo: base.height) } catch {
                throw .service(.store(.corrupt(record: "meta[base].anchor", reason: error.description)))
            }
            for c in changes {
                guard let ch = try? BlockHeader.decode(c.header).height, ch.value >= from else { continue }
                guard out.count < limit else { return JSONResponse.make(["powers": out, "next": ch.value, "head": meta.head.value]) }
                out.append(["height": ch.value, "header": Hex.encode(c.header), "certificate": Hex.encode(c.certificate),
                            "power": c.power.map { ["key": $0.key.hex, "power": $0.power] }])
            }
            h = max(h, ((base.height.value + 1 + k - 1) / k) * k)
        }
        while out.count < limit, h <= meta.head.value {
            let at = Height(h)
            let b = try read { () throws(StoreError) in try service.log.block(at: at) }
            let prev = h > 1 ? try read { () throws(StoreError) in try service.log.block(at: Height(at.value - 1)) } : nil
            guard let b, let post = b.header.post else { h += k; continue }
            if post.nextPowerHash != (prev?.header.post?.nextPowerHash ?? genesisPower) {
                let power = try await nextPower(at: at, committed: post.nextPowerHash)
                out.append(["height": h, "header": Hex.encode(b.headerBytes), "certificate": Hex.encode(b.certificate.encoded()),
                            "power": power.keys.sorted().map { ["key": $0.hex, "power": power[$0]!] }])
            }
            h += k
        }
        return JSONResponse.make(["powers": out, "next": h, "head": meta.head.value])
    }

    /// `/v1/light/checkpoints?from=H`: the stored certificates of stable checkpoints at
    /// or after H (FORMAT.md §5, §10): each a quorum's signature over a height, its block
    /// hash and the state root after it, which a client checks against the power it
    /// trusts for the block after (`/v1/light/powers`).
    func lightCheckpoints(_ request: Request) throws(APIError) -> Response {
        let from = Height(try Input.uint(request, "from") ?? 1)
        let limit = try Input.limit(request)
        guard let meta = try read({ () throws(StoreError) in try service.log.metadata() }) else {
            throw .service(.unavailable("the log is not initialised"))
        }
        // One more than the page: where the next page starts.
        let heights = try read { () throws(StoreError) in try service.log.checkpointCertificateHeights(from: from, limit: limit + 1) }
        var out: [[String: Any]] = []
        for h in heights.prefix(limit) {
            guard let bytes = try read({ () throws(StoreError) in try service.log.checkpointCertificate(at: h) }) else { continue }
            let c: CheckpointCertificate
            do { c = try CheckpointCertificate.decode(bytes: bytes) } catch {
                throw .service(.store(.corrupt(record: "meta[stable \(h.value)]", reason: error.description)))
            }
            out.append(["height": h.value, "blockHash": c.blockHash.hex, "stateRoot": c.stateRoot.hex,
                        "signers": c.votes.map(\.key.hex), "certificate": Hex.encode(bytes)])
        }
        let next = heights.count > limit ? heights[limit].value : (heights.last.map { $0.value + 1 } ?? from.value)
        return JSONResponse.make(["checkpoints": out, "next": next, "head": meta.head.value])
    }

    /// The power block `h` stored for the next epoch (kept when the state of `h` is
    /// pruned), or, in a log written before power records existed, the state's; checked
    /// against the hash the header commits, so a damaged record is an error, not an answer.
    func nextPower(at h: Height, committed: Hash32) async throws(APIError) -> [PublicKey: UInt64] {
        var power: [PublicKey: UInt64]
        if let stored = try read({ () throws(StoreError) in try service.log.nextPower(at: h) }) {
            power = [:]
            for e in stored { power[e.key] = e.power }
        } else {
            do { power = try await service.state(at: h).powerForNextBlock() } catch { throw .service(error) }
        }
        guard LedgerState.powerHash(power, Sodium()) == committed else {
            throw .service(.store(.corrupt(record: "meta[power \(h.value)]", reason: "does not hash to the header's next power hash")))
        }
        return power
    }

    /// `/v1/genesis`: the genesis document's bytes, which a light client hashes and
    /// compares with the genesis hash it trusts.
    func genesisDocument() throws(APIError) -> Response {
        guard let meta = try read({ () throws(StoreError) in try service.log.metadata() }) else {
            throw .service(.unavailable("the log is not initialised"))
        }
        return JSONResponse.make(["hash": meta.genesisHash.hex, "bytes": Hex.encode(meta.genesisBytes)])
    }
}
