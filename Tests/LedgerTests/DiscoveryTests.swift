import Foundation
import LedgerCore
import LedgerCrypto
@testable import LedgerHTTP
import LedgerProjections
import Testing

/// Finding agents through the API (rule version 3): by capability, reputation and
/// status, sorted by standing and paged with a cursor; and an agent's registration file
/// with the proof of its leaf.
@Suite("Agent discovery", .timeLimit(.minutes(10)))
struct DiscoveryTests {
    @Test func agentsAreFoundByCapabilityReputationAndStatus() async throws {
        var fixture = Fixture()
        fixture.ruleVersion = RuleVersion.trust
        let f = fixture
        let service = try SoloService(fixture: f)
        @Sendable func profile(_ n: String, _ caps: [String]) -> Payload {
            .agentRegister(AgentProfile(name: n, capabilities: caps, personality: "lawful", endpoint: "https://\(n).example"))
        }
        let (alice, bob, carol) = (f.alice.publicKey.hex, f.bob.publicKey.hex, f.carol.publicKey.hex)
        @Sendable func keys(_ r: Reply) -> [String] { (r.json?["agents"] as? [[String: Any]])?.compactMap { $0["agent"] as? String } ?? [] }
        try await withAPI(service) { client in
            // Three agents; the validator (full weight) endorses bob +5 and carol +2; carol retires.
            let events = [f.event(f.alice, 1, profile("alice", ["audit"]), fee: 10), f.event(f.bob, 1, profile("bob", ["audit", "memes"]), fee: 10),
                          f.event(f.carol, 1, profile("carol", ["memes"]), fee: 10),
                          f.event(f.dave, 1, .transfer(to: f.producer.publicKey, amount: 10_000, memo: ""), fee: 10)]
            #expect(try await client.submit(events).status == .ok)
            let more = [f.event(f.producer, 1, .endorse(subject: f.bob.publicKey, delta: 5, reason: ""), fee: 10),
                        f.event(f.producer, 2, .endorse(subject: f.carol.publicKey, delta: 2, reason: ""), fee: 10),
                        f.event(f.carol, 2, .agentDeregister, fee: 10)]
            let r = try await client.submit(more)
            #expect((r.json?["receipts"] as? [[String: Any]])?.allSatisfy { $0["status"] as? String == "committed" } == true, "\(r.json ?? [:])")

            #expect(keys(try await client.call(.get, "/v1/agents?capability=audit")) == [bob, alice])
            #expect(keys(try await client.call(.get, "/v1/agents?capability=memes&status=active")) == [bob])
            #expect(keys(try await client.call(.get, "/v1/agents?status=retired")) == [carol])
            #expect(keys(try await client.call(.get, "/v1/agents?minReputation=1000")) == [bob, carol])
            // Sorted by standing, one a page: the cursor walks bob, carol, alice.
            var seen: [String] = [], after: String? = nil
            repeat {
                let page = try await client.call(.get, "/v1/agents?sort=standing&limit=1" + (after.map { "&after=\($0)" } ?? ""))
                seen += keys(page)
                after = page.json?["next"] as? String
            } while after != nil && seen.count < 5
            #expect(seen == [bob, carol, alice])
            #expect(try await client.call(.get, "/v1/agents?status=sleeping").errorCode == "bad_parameter")
            #expect(try await client.call(.get, "/v1/agents?minReputation=lots").errorCode == "bad_parameter")
            #expect(try await client.call(.get, "/v1/agents?sort=standing&after=nonsense").errorCode == "bad_parameter")
            // Without a filter the listing stays in key order.
            #expect(keys(try await client.call(.get, "/v1/agents")) == [alice, bob, carol].sorted())

            let reg = try #require(try await client.call(.get, "/v1/agents/\(bob)/registration").json)
            #expect(reg["type"] as? String == "https://eips.ethereum.org/EIPS/eip-8004#registration-v1")
            #expect(reg["name"] as? String == "bob" && reg["capabilities"] as? [String] == ["audit", "memes"])
            let keyset = reg["keys"] as? [String: Any]
            #expect(keyset?["ed25519"] as? String == bob)
            #expect(keyset?["x25519"] as? String == Hex.encode(try SealedBox.x25519(f.bob.publicKey)))
            let rep = reg["reputation"] as? [String: Any]
            #expect(rep?["score"] as? Int == 5_000 && rep?["bond"] as? Int == 1_000 && rep?["status"] as? String == "active")
            let proof = try #require(reg["proof"] as? [String: Any])
            #expect(proof["found"] as? Bool == true && (proof["leaf"] as? [String: Any])?["kind"] as? String == "agent")
            #expect(proof["certificate"] != nil && proof["header"] != nil && proof["proof"] is String)
            #expect(try await client.call(.get, "/v1/agents/\(f.dave.publicKey.hex)/registration").errorCode == "agent_not_found")
        }
    }
}
