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
            Exit 0 when it verified; 1 with the reason when refused.
            """)

    @Option(help: "The genesis JSON file the chain started from (FORMAT.md §6).") var genesis: String
    @Option(help: "Trust the genesis only if it hashes to this (hex).") var genesisHash: String?
    @Option(help: "The /v1/light/powers answer (power changes from the genesis on).") var powers: String?
    @Option(help: "The proof answer: an entity read with proof=true, or /v1/events/ID?proof=true.") var proof: String

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
                guard let id = Bytes32(hex: e["id"] as? String ?? "") else { throw CLIError("proof: the event has no id") }
                try lc.verifyEvent(id: id, path: try hex(event["path"], "proof.path"), header: try hex(event["header"], "proof.header"),
                                   certificate: try hex(event["certificate"], "proof.certificate"))
                print("ok: event \(id.hex) is event \(event["index"] ?? "?") of \(event["count"] ?? "?") in block \(target)")
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
