import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import Testing

@Suite struct VectorTests {
    func committed() throws -> SchemaVectors.Document {
        let data = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/schemas/vectors.json"))
        return try JSONDecoder().decode(SchemaVectors.Document.self, from: data)
    }

    @Test func committedVectorsMatchTheImplementation() throws {
        // If this fails, the byte format changed: that breaks every stored log and every
        // client. Regenerate with tools/gen-vectors.sh only for a deliberate, versioned change.
        #expect(try committed() == SchemaVectors.generate())
    }

    @Test func vectorsDecodeAndVerify() throws {
        let doc = try committed()
        for k in doc.keys {
            #expect(try SigningKey(seed: Hex.decode(k.seed)!).publicKey.hex == k.publicKey)
        }
        for v in doc.events {
            let bytes = try #require(Hex.decode(v.bytes))
            let e = try Envelope(bytes: bytes)
            #expect(e.kind.rawValue == v.kindCode && e.author.hex == v.author && e.nonce == v.nonce && e.fee == v.fee)
            #expect(Hex.encode(e.payload) == v.payload)
            #expect(EventCrypto.verify(e))
            #expect(EventCrypto.id(bytes).hex == v.id)
            #expect(Hex.encode(try e.decodePayload().encoded()) == v.payload)
        }
        #expect(Blake2b.hash(Hex.decode(doc.genesis)!).hex == doc.genesisHash)
        let g = try Genesis.decode(Hex.decode(doc.genesis)!)
        #expect(g.chainID.name == doc.chainId)
    }

    @Test func anotherLanguageAgrees() throws {
        // tools/verify_vectors.py re-implements the format from schemas/FORMAT.md in
        // Python (hashlib + cryptography); .ci/run installs what it needs.
        let r = try run("/usr/bin/env", ["python3", repoRoot + "/tools/verify_vectors.py", repoRoot + "/schemas/vectors.json"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("ok: 18 events"))
    }
}
