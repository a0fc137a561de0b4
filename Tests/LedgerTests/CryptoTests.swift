import Foundation
import LedgerCore
import LedgerCrypto
import Testing

@Suite struct CryptoTests {
    @Test func parallelVerifyMatchesSerial() {
        let f = Fixture()
        var events = (1 ... 300).map { f.event(f.alice, UInt64($0), .bond(amount: UInt64($0))) }
        var b = events[17].bytes; b[b.count - 1] ^= 1
        events[17] = try! Envelope(bytes: b)
        var b2 = events[250].bytes; b2[10] ^= 1
        events[250] = try! Envelope(bytes: b2)
        let ok = ParallelVerifier.verify(events, workers: 2)
        #expect(ok == events.map { EventCrypto.verify($0) })
        #expect(ok.enumerated().filter { !$0.element }.map(\.offset) == [17, 250])
    }

    @Test func keyFilePlainAndEncrypted() throws {
        let dir = TempDir("keys"); defer { dir.cleanup() }
        let key = SigningKey.generate()
        try KeyFile.write(key, to: dir.sub("plain.json"))
        var st = stat(); stat(dir.sub("plain.json"), &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try KeyFile.read(from: dir.sub("plain.json")).publicKey == key.publicKey)

        try KeyFile.write(key, to: dir.sub("sealed.json"), passphrase: "correct horse", cost: .minimum)
        let text = try String(contentsOfFile: dir.sub("sealed.json"), encoding: .utf8)
        #expect(!text.contains(Hex.encode(key.seed)), "the seed must not appear in an encrypted file")
        #expect(try KeyFile.read(from: dir.sub("sealed.json"), passphrase: "correct horse").publicKey == key.publicKey)
        #expect(throws: CryptoError.wrongPassphrase(path: dir.sub("sealed.json"))) {
            try KeyFile.read(from: dir.sub("sealed.json"), passphrase: "wrong")
        }
        // Never overwrites an existing key.
        #expect(throws: CryptoError.self) { try KeyFile.write(key, to: dir.sub("plain.json")) }
        // Refuses a key file others can read.
        chmod(dir.sub("plain.json"), 0o644)
        #expect(throws: CryptoError.self) { try KeyFile.read(from: dir.sub("plain.json")) }
    }

    @Test func keyFileWithMismatchedPublicKeyIsRefused() throws {
        let dir = TempDir("keys"); defer { dir.cleanup() }
        let path = dir.sub("k.json")
        let json = #"{"format":"chaosledger-key","version":1,"publicKey":"\#(SigningKey.derived("x").publicKey.hex)","seed":"\#(Hex.encode(SigningKey.derived("y").seed))"}"#
        _ = FileManager.default.createFile(atPath: path, contents: Data(json.utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: CryptoError.keyFile(path: path, reason: "public key does not match the seed")) { try KeyFile.read(from: path) }
    }

    @Test func rotationNeedsBothSignatures() {
        let chain = Fixture.chain.raw
        let v = SigningKey.derived("v"), new = SigningKey.derived("n"), mallory = SigningKey.derived("m")
        let good = EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(v.publicKey), nonce: 4, old: v, new: new)
        #expect(EventCrypto.verifyRotation(good, chain: chain, validator: ValidatorID(v.publicKey), nonce: 4))
        #expect(!EventCrypto.verifyRotation(good, chain: chain, validator: ValidatorID(v.publicKey), nonce: 5), "bound to the nonce")
        var bad = good
        bad.newKeySignature = EventCrypto.rotation(chain: Fixture.chain, validator: ValidatorID(v.publicKey), nonce: 4, old: v, new: mallory).newKeySignature
        #expect(!EventCrypto.verifyRotation(bad, chain: chain, validator: ValidatorID(v.publicKey), nonce: 4))
    }
}
