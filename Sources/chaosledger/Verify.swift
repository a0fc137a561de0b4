import ArgumentParser
import Foundation
import LedgerAudit
import LedgerCore
import LedgerProjections

/// `chaosledger verify`: the light client offline. It trusts a genesis (the JSON file,
/// optionally pinned by its hash) and checks what a node served — saved as the API gave
/// it — without talking to any node (schemas/FORMAT.md §14.4).
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a state or event proof offline from a genesis, following power changes through certificates.",
        discussion: """
            Save what a node serves, then check it here:
              curl -s 'NODE/v1/light/powers?from=1' > powers.json
              curl -s 'NODE/v1/accounts/KEY?proof=true' > proof.json      (or any entity read, or /v1/events/ID?proof=true)
              chaosledger verify --genesis genesis.json --powers powers.json --proof proof.json
            A stream (every event of an entity up to a proven height, none left out):
              curl -s 'NODE/v1/streams/account/KEY?proof=true' > proof.json
              curl -s 'NODE/v1/streams/account/KEY?limit=500' > events.json   (every page, joined)
              chaosledger verify --genesis genesis.json --powers powers.json --proof proof.json --stream-events events.json
            Exit 0 when it verified; 1 with the reason when refused.
            """)

    @Option(help: "The genesis JSON file the chain started from (FORMAT.md §6).") var genesis: String
    @Option(help: "Trust the genesis only if it hashes to this (hex).") var genesisHash: String?
    @Option(help: "The /v1/light/powers answer (power changes from the genesis on).") var powers: String?
    @Option(help: "The proof answer: an entity read with proof=true, /v1/events/ID?proof=true or /v1/streams/KIND/ID?proof=true.") var proof: String
    @Option(help: "For a stream proof: the stream's events as /v1/streams/KIND/ID lists them.") var streamEvents: String?

    func run() throws {
        func json(_ path: String) throws -> [String: Any] {
            guard let d = FileManager.default.contents(atPath: path),
                  let o = try JSONSerialization.jsonObject(with: d) as? [String: Any] else { throw CLIError("\(path): not a JSON object") }
            return o
        }
        func hex(_ v: Any?, _ what: String) throws -> [UInt8] {
            guard let s = v as? String, let b = Hex.decode(s) else { throw CLIError("\(what): missing or not hex") }
            return b
        }
        guard let data = FileManager.default.contents(atPath: genesis) else { throw CLIError("cannot read \(genesis)") }
        let g = try JSONDecoder().decode(GenesisFile.self, from: data).genesis()
        let trusted = try genesisHash.map { h throws -> Hash32 in
            guard let v = Bytes32(hex: h) else { throw CLIError("--genesis-hash: not 64 hex digits") }
            return v
        }
        do {
            var lc = try LightClient(genesis: g.encoded(), hash: trusted)
            let answer = try json(proof)
            let event = answer["proof"] as? [String: Any]
            let target = (event?["height"] ?? answer["height"]) as? Int ?? 0
            if let powers {
                for c in try json(powers)["powers"] as? [[String: Any]] ?? [] where (c["height"] as? Int ?? .max) < target {
                    var next: [PublicKey: UInt64] = [:]
                    for p in c["power"] as? [[String: Any]] ?? [] {
                        guard let k = Bytes32(hex: p["key"] as? String ?? ""), let v = (p["power"] as? NSNumber)?.uint64Value else {
                            throw CLIError("powers: a malformed entry")
                        }
                        next[k] = v
                    }
                    try lc.adopt(header: try hex(c["header"], "powers.header"), certificate: try hex(c["certificate"], "powers.certificate"), next: next)
                    print("power changes at block \(c["height"] ?? "?"): \(next.count) validator(s)")
                }
            }
            if let event, let e = answer["event"] as? [String: Any] {
                guard let id = EventID(hex: e["id"] as? String ?? "") else { throw CLIError("proof: the event has no id") }
                try lc.verifyEvent(id: id, path: try hex(event["path"], "proof.path"), header: try hex(event["header"], "proof.header"),
                                   certificate: try hex(event["certificate"], "proof.certificate"))
                print("ok: event \(id.hex) is event \(event["index"] ?? "?") of \(event["count"] ?? "?") in block \(target)")
            } else if let end = (answer["endSequence"] as? NSNumber)?.uint64Value {
                guard let streamEvents else { throw CLIError("a stream proof needs --stream-events") }
                guard let leaf = answer["leaf"] as? [String: Any], let id = Hex.decode(leaf["id"] as? String ?? ""),
                      let key = StreamKey(bytes: id) else { throw CLIError("proof: not a stream leaf") }
                var ids: [EventID] = []
                for e in try json(streamEvents)["events"] as? [[String: Any]] ?? [] {
                    guard let s = (e["sequence"] as? NSNumber)?.uint64Value, let i = EventID(hex: e["id"] as? String ?? "") else {
                        throw CLIError("stream events: a malformed entry")
                    }
                    if s < end { ids.append(i) }
                }
                let h = try lc.verifyStream(key, ids: ids, proof: try hex(answer["proof"], "proof"), header: try hex(answer["header"], "header"),
                                            certificate: try hex(answer["certificate"], "certificate"))
                print("ok: stream \(key) at height \(target): all \(h.count) event(s), in order")
            } else {
                let p = try lc.verifyState(proof: try hex(answer["proof"], "proof"), header: try hex(answer["header"], "header"),
                                           certificate: try hex(answer["certificate"], "certificate"))
                print("ok: \(p.leaf) at height \(p.height.value): \(p.value.map { "\($0.count) bytes, \(Hex.encode($0))" } ?? "absent")")
            }
        } catch let r as LightClient.Refusal {
            print("REFUSED: \(r)")
            throw ExitCode(1)
        }
    }
}
