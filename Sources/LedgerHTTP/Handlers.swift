import Foundation
import Hummingbird
import NIOCore
import LedgerCore
import LedgerCrypto
import LedgerNode
import LedgerProjections
import LedgerStore
import Prometheus
import LedgerViews

/// The route handlers. Shapes of ledger records come from `Render`, the same JSON the
/// CLI prints; this file adds only the envelopes around them (pages, receipts, status).
struct Handlers: Sendable {
    let service: any NodeService
    let config: APIConfig
    let registry: PrometheusCollectorRegistry
    /// Live subscriptions, against `config.subscribersMax`.
    let subscribers = SubscriberCount()
    /// Subscriptions' reads of the log, one at a time.
    let readTurns = ReadTurns()
    /// The state offered for state sync.
    let syncCache = SyncCache()

    func respond(_ endpoint: Endpoint, _ request: Request, _ context: APIContext) async throws(APIError) -> Response {
        switch endpoint {
        case .submit: try await submit(request)
        case .eventsRange: try eventsRange(request)
        case .event: try await event(request, context)
        case .blocksRange: try blocksRange(request)
        case .block: try block(context)
        case .stream: try await stream(request, context)
        case .state: JSONResponse.make(Render.summary(try await state(request)))
        case .account: try await account(request, context)
        case .genesis: try genesisDocument()
        case .lightPowers: try await lightPowers(request)
        case .lightCheckpoints: try lightCheckpoints(request)
        case .syncSnapshot: try await syncSnapshot()
        case .syncChunk: try await syncChunk(request)
        case .validators:
            try await list(request, "validators") { s in s.validators.map { ($0.key, Render.validator($0.value)) } }
        case .validator:
            try await entity(request, context, "id", "validator", .validator) { s, k in s.validators[k].map(Render.validator) }
        case .agents:
            Self.discovering(request) ? try await discoverAgents(request)
                : try await list(request, "agents") { s in s.agents.map { ($0.key, Render.agent($0.key, $0.value, s)) } }
        case .agentRegistration: try await agentRegistration(request, context)
        case .agent:
            try await entity(request, context, "key", "agent", .agent) { s, k in s.agents[k].map { Render.agent(k, $0, s) } }
        case .alliances:
            try await list(request, "alliances") { s in s.alliances.map { ($0.key, Render.alliance($0.value)) } }
        case .alliance:
            try await entity(request, context, "id", "alliance", .alliance) { s, k in s.alliances[k].map(Render.alliance) }
        case .jobs:
            try await list(request, "jobs") { s in s.economy.jobs.map { ($0.key, Render.job($0.value, s)) } }
        case .job:
            try await entity(request, context, "id", "job", .job) { s, k in s.economy.jobs[k].map { Render.job($0, s) } }
        case .reputation:
            try await entity(request, context, "key", "agent", .reputation) { s, k in
                s.agents[k] != nil || s.validators[ValidatorID(k)] != nil ? Render.reputation(k, s) : nil
            }
        case .memes:
            try await list(request, "memes") { s in s.economy.memes.map { ($0.key, Render.memeState($0.value)) } }
        case .meme:
            try await entity(request, context, "id", "meme", .meme) { s, k in s.economy.memes[k].map(Render.memeState) }
        case .proposals:
            try await list(request, "proposals") { s in s.economy.proposals.map { ($0.key, Render.proposalState($0.value)) } }
        case .proposal:
            try await entity(request, context, "id", "proposal", .proposal) { s, k in s.economy.proposals[k].map(Render.proposalState) }
        case .economy:
            JSONResponse.make(Render.economy(try await state(request)))
        case .subscribe: try subscribe(request, closing: context.channel)
        case .fees: await fees()
        case .peers: JSONResponse.make(["peers": service.peers().sorted { $0.key < $1.key }.map(Self.peer)])
        case .status: JSONResponse.make(Self.status(await service.status()))
        case .health: JSONResponse.make(["status": "ok"])
        case .ready: try await ready()
        case .metrics:
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
    }

    // MARK: Submission

    private struct SubmitBody: Decodable { var events: [String] }

    /// One raw event as `application/octet-stream`, or a JSON batch of hex-encoded
    /// events. Decoding, signature and state rules are the node's; this layer only
    /// turns the body into byte strings and the receipts into JSON.
    private func submit(_ request: Request) async throws(APIError) -> Response {
        let wait = try Input.bool(request, "wait") ?? false
        let timeoutMs = try Input.uint(request, "timeoutMs") ?? min(10_000, config.waitMaxMs)
        guard timeoutMs <= config.waitMaxMs else {
            throw .badParameter("timeoutMs", String(timeoutMs), expected: "at most \(config.waitMaxMs)")
        }
        let mediaType = request.headers[.contentType].map { $0.split(separator: ";")[0].trimmingCharacters(in: .whitespaces).lowercased() }
        let body = try await Input.body(request, max: config.bodyBytesMax)
        let events: [[UInt8]]
        switch mediaType {
        case "application/octet-stream":
            guard !body.isEmpty else { throw .badRequest("empty_body", "the body holds no event") }
            events = [body]
        case nil, "application/json":
            let parsed: SubmitBody
            do { parsed = try JSONDecoder().decode(SubmitBody.self, from: Data(body)) } catch {
                throw .badRequest("malformed_json", "body must be {\"events\": [\"<hex>\", ...]}")
            }
            guard (1 ... Limits.submitEventsMax).contains(parsed.events.count) else {
                throw .badRequest("bad_batch", "a submission holds 1 to \(Limits.submitEventsMax) events, got \(parsed.events.count)")
            }
            var decoded: [[UInt8]] = []
            decoded.reserveCapacity(parsed.events.count)
            for (i, hex) in parsed.events.enumerated() {
                guard let bytes = Hex.decode(hex), !bytes.isEmpty else {
                    throw .badRequest("bad_hex", "events[\(i)] is not a non-empty string of hex digit pairs")
                }
                decoded.append(bytes)
            }
            events = decoded
        default:
            throw APIError(status: .unsupportedMediaType, code: "unsupported_media_type",
                           message: "send application/json or application/octet-stream")
        }
        let receipts = await service.submit(events, waitCommitted: wait, timeoutMs: timeoutMs)
        // All refused: the request as a whole did nothing, which a client should see
        // in the status without reading every receipt.
        let allRejected = !receipts.isEmpty && receipts.allSatisfy { $0.status == .rejected }
        return Response(status: allRejected ? .unprocessableContent : .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONText.receipts(receipts))))
    }

    // MARK: The log

    func read<T>(_ body: () throws(StoreError) -> T) throws(APIError) -> T {
        do { return try body() } catch { throw .service(.store(error)) }
    }

    private func eventsRange(_ request: Request) throws(APIError) -> Response {
        let from = SequenceNumber(try Input.uint(request, "from") ?? 0)
        let limit = try Input.limit(request, max: Limits.readRangeEventsMax)
        let events = try read { () throws(StoreError) in try service.log.events(from: from, count: limit) }
        return JSONResponse.make(["events": events.map(Render.event), "next": (events.last?.sequence.value).map { $0 + 1 } ?? from.value])
    }

    private func event(_ request: Request, _ context: APIContext) async throws(APIError) -> Response {
        let id = EventID(try Input.pathBytes32(context, "id"))
        switch await service.eventStatus(id) {
        case .unknown:
            throw .notFound("event_not_found", "no event \(id.hex) in the log or the mempool")
        case .pending:
            return JSONResponse.make(["status": "pending"])
        case let .committed(height, sequence):
            guard let e = try read({ () throws(StoreError) in try service.log.event(id: id) }) else {
                throw .service(.unavailable("event \(id.short) is committed but not readable yet"))
            }
            var d: [String: Any] = ["status": "committed", "height": height.value, "sequence": sequence.value, "event": Render.event(e)]
            if try Input.bool(request, "proof") == true { d["proof"] = try eventProof(e, height: height) }
            return JSONResponse.make(d)
        }
    }

    private func blocksRange(_ request: Request) throws(APIError) -> Response {
        var h = try Input.uint(request, "from") ?? 1
        let limit = try Input.limit(request)
        var out: [[String: Any]] = []
        while out.count < limit, let b = try read({ () throws(StoreError) in try service.log.block(at: Height(h)) }) {
            out.append(Render.block(b, hash: Blake2b.hash(b.headerBytes)))
            h += 1
        }
        return JSONResponse.make(["blocks": out, "next": h])
    }

    private func block(_ context: APIContext) throws(APIError) -> Response {
        let h = Height(try Input.pathUInt(context, "height"))
        guard let b = try read({ () throws(StoreError) in try service.log.block(at: h) }) else {
            throw .notFound("block_not_found", "no block at height \(h.value)")
        }
        var d = Render.block(b, hash: Blake2b.hash(b.headerBytes))
        d["events"] = try read { () throws(StoreError) in try service.log.events(from: b.firstSequence, count: Int(b.header.eventCount)) }
            .map(Render.event)
        return JSONResponse.make(d)
    }

    private func stream(_ request: Request, _ context: APIContext) async throws(APIError) -> Response {
        let id = try Input.pathBytes32(context, "key")
        let key: StreamKey
        switch context.parameters.get("kind") {
        case "account": key = .account(id)
        case "agent": key = .agent(id)
        case "alliance": key = .alliance(AllianceID(id))
        case "job": key = .job(JobID(id))
        case let other: throw .badParameter("kind", other ?? "", expected: "account, agent, alliance or job")
        }
        if try Input.bool(request, "proof") == true { return try await streamProof(request, key) }
        let after = try Input.uint(request, "after").map { SequenceNumber($0) }
        let limit = try Input.limit(request)
        let events = try read { () throws(StoreError) in try service.log.stream(key, after: after, limit: limit) }
        return JSONResponse.make(["stream": key.description, "events": events.map(Render.event),
                                  "next": (events.last?.sequence.value).map { $0 as Any } ?? NSNull()])
    }

    // MARK: Projections

    func state(_ request: Request) async throws(APIError) -> LedgerState {
        let h = try Input.height(request)
        do { return try await service.state(at: h) } catch { throw .service(error) }
    }

    private func account(_ request: Request, _ context: APIContext) async throws(APIError) -> Response {
        let k = try Input.pathBytes32(context, "key")
        if try Input.bool(request, "proof") == true { return try await entityProof(request, .account, k) { Render.account(k, $0) } }
        let s = try await state(request)
        guard let d = Render.account(k, s) else { throw .notFound("account_not_found", "no account \(k.hex) at height \(s.height.value)") }
        return JSONResponse.make(d)
    }

    private func entity<ID: Bytes32Named>(_ request: Request, _ context: APIContext, _ param: String, _ what: String, _ kind: LeafKind,
                                          _ render: (LedgerState, ID) -> [String: Any]?) async throws(APIError) -> Response {
        let k = ID(try Input.pathBytes32(context, param))
        if try Input.bool(request, "proof") == true { return try await entityProof(request, kind, k.raw) { render($0, k) } }
        let s = try await state(request)
        guard let d = render(s, k) else { throw .notFound("\(what)_not_found", "no \(what) \(k.raw.hex) at height \(s.height.value)") }
        return JSONResponse.make(d)
    }

    /// A page of a projection map in key order: `after` is the last key of the previous
    /// page, and `next` the key to pass for the following one (null on the last page).
    private func list<ID: Bytes32Named>(_ request: Request, _ name: String,
                                        _ entries: (LedgerState) -> [(ID, [String: Any])]) async throws(APIError) -> Response {
        let after = try Input.query(request, "after").map { raw throws(APIError) in try Input.bytes32(raw, name: "after") }
        let limit = try Input.limit(request)
        let s = try await state(request)
        let sorted = entries(s).filter { after == nil || $0.0.raw > after! }.sorted { $0.0.raw < $1.0.raw }
        let page = sorted.prefix(limit)
        let next: Any = sorted.count > limit ? page.last!.0.raw.hex : NSNull()
        return JSONResponse.make(["height": s.height.value, name: page.map(\.1), "next": next])
    }

    // MARK: Node

    private func fees() async -> Response {
        let f = await service.feeEstimate()
        return JSONResponse.make(["minFee": f.minFee, "suggested": f.suggested, "mempool": f.mempool, "baseFee": f.baseFee,
                                  "ruleVersion": f.ruleVersion, "gas": f.gas])
    }

    static func peer(_ p: PeerInfo) -> [String: Any] {
        ["key": p.key.hex, "address": p.address, "listenAddress": p.listenAddress ?? NSNull(), "role": p.role.rawValue,
         "outbound": p.outbound, "latencyMs": p.latencyMs ?? NSNull(), "score": p.score, "bytesIn": p.bytesIn, "bytesOut": p.bytesOut]
    }

    static func status(_ s: NodeStatus) -> [String: Any] {
        ["role": s.role.rawValue, "nodeKey": s.nodeKey.hex, "chainId": s.chainID, "height": s.height.value, "headHash": s.headHash.hex,
         "stateRoot": s.stateRoot.hex, "view": s.view, "changing": s.changing, "primary": s.primary?.hex ?? NSNull(),
         "mempool": s.mempool, "peers": s.peers, "viewChanges": s.viewChanges, "committedEvents": s.committedEvents,
         "commitLatencyMs": s.commitLatencyMs ?? NSNull(), "ready": s.ready, "stopping": s.stopping]
    }

    private func ready() async throws(APIError) -> Response {
        let s = await service.status()
        guard s.ready, !s.stopping else {
            throw APIError(status: .serviceUnavailable, code: "not_ready",
                           message: s.stopping ? "the node is stopping" : "the node is not ready (catching up or starting)")
        }
        return JSONResponse.make(["status": "ready", "height": s.height.value])
    }
}
