import Foundation
import LedgerAudit
import LedgerCore
import LedgerCrypto
import LedgerWorkload
import Testing

@Suite struct VectorTests {
    func committed() throws -> SchemaVectors.Document {
        let data = try Data(contentsOf: URL(fileURLWithPath: repoRoot + "/schemas/vectors.json"))
        return try JSONDecoder().decode(SchemaVectors.Document.self, from: data)
    }

    @Test func committedVectorsMatchTheImplementation() throws {
        // If this fails, the byte format changed: that breaks every stored log and every
        // client. Regenerate with tools/gen-vectors.sh only for a deliberate, versioned change.
        #expect(try committed() == SchemaVectors.document())
    }

    /// The bundle vector verifies as `replay --bundle` would: anchored to the genesis
    /// through its power change, the snapshot's root signed by its checkpoint certificate.
    @Test func theBundleVectorVerifies() throws {
        let v = try #require(try committed().bundle)
        let b = try AuditBundle.decode(try #require(Hex.decode(v.bytes)))
        let (r, _) = b.verify()
        #expect(r.ok && r.fromHeight == 2 && r.blocks == 2 && r.checkpointCertificatesVerified == 1, "\(String(describing: r.failure))")
        #expect(r.anchor == "the genesis, through 1 certified power changes up to block 2")
        #expect(v.powerChangeHeights == [2] && v.checkpointHeights == [2, 4])
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

    /// FORMAT.md §1.1 states every limit as a number, so that a verifier needs no Swift;
    /// each row must be the value the code applies, and every limit the table's
    /// decoders use must have a row.
    @Test func theLimitsTableIsTheCode() throws {
        let text = try String(contentsOfFile: repoRoot + "/schemas/FORMAT.md", encoding: .utf8)
        let section = try #require(text.components(separatedBy: "### 1.1 Limits").dropFirst().first?.components(separatedBy: "\n## ").first)
        var table: [String: Int] = [:]
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            table[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = Int(cells[1].replacingOccurrences(of: ",", with: ""))
        }
        let code: [String: Int] = [
            "eventBytesMax": Limits.eventBytesMax, "memoBytesMax": Limits.memoBytesMax, "nameBytesMax": Limits.nameBytesMax,
            "personalityBytesMax": Limits.personalityBytesMax, "endpointBytesMax": Limits.endpointBytesMax,
            "capabilitiesMax": Limits.capabilitiesMax, "capabilityBytesMax": Limits.capabilityBytesMax,
            "allianceTargetsMax": Limits.allianceTargetsMax, "allianceTextBytesMax": Limits.allianceTextBytesMax,
            "memeBytesMax": Limits.memeBytesMax, "reasonBytesMax": Limits.reasonBytesMax, "jobTitleBytesMax": Limits.jobTitleBytesMax,
            "milestonesMax": Limits.milestonesMax, "cosignaturesMax": Limits.cosignaturesMax,
            "memeContentBytesMax": Limits.memeContentBytesMax, "memeTagsMax": Limits.memeTagsMax, "memeTagBytesMax": Limits.memeTagBytesMax,
            "consensusMessageBytesMax": Limits.consensusMessageBytesMax, "certificateSignersMax": Limits.certificateSignersMax,
            "blockHeaderBytesMax": Limits.blockHeaderBytesMax, "blockEventsMax": Limits.blockEventsMax, "blockBytesMax": Limits.blockBytesMax,
            "genesisValidatorsMax": Limits.genesisValidatorsMax, "genesisAllocationsMax": Limits.genesisAllocationsMax,
            "genesisBytesMax": Limits.genesisBytesMax, "snapshotBytesMax": Limits.snapshotBytesMax,
            "auditBundleBytesMax": Limits.auditBundleBytesMax, "peerMessageBytesMax": Limits.peerMessageBytesMax,
            "syncChunkBytesMax": Limits.syncChunkBytesMax, "messageBytesMax": Limits.messageBytesMax,
            "sealedBoxOverheadBytes": Limits.sealedBoxOverheadBytes, "messagesPerSenderPerBlockMax": Limits.messagesPerSenderPerBlockMax,
        ]
        #expect(table == code, "FORMAT.md §1.1 and Limits.swift disagree: \(table.filter { code[$0.key] != $0.value }) vs \(code.filter { table[$0.key] != $0.value })")
    }
}
