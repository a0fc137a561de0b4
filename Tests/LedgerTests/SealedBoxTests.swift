import LedgerCore
import LedgerCrypto
import Testing

/// Messages between agents: a sealed box opens only with the recipient's signing key,
/// and an altered box, a box for someone else or an oversized message is refused.
@Suite struct SealedBoxTests {
    let alice = SigningKey.derived("box-alice"), bob = SigningKey.derived("box-bob")

    @Test func aSealedMessageOpensOnlyForItsRecipient() throws {
        let text = Array("meet at block 42".utf8)
        let box = try SealedBox.seal(text, to: bob.publicKey)
        #expect(box.count == text.count + Limits.sealedBoxOverheadBytes)
        #expect(try SealedBox.open(box, with: bob) == text)
        #expect(throws: SealedBox.Failure.cannotOpen) { try SealedBox.open(box, with: alice) }
        for i in [0, 31, 32, box.count - 1] {
            var bad = box
            bad[i] ^= 1
            #expect(throws: SealedBox.Failure.cannotOpen) { try SealedBox.open(bad, with: bob) }
        }
        #expect(throws: SealedBox.Failure.cannotOpen) { try SealedBox.open(Array(box.prefix(40)), with: bob) }
        // Two seals of one message differ (a fresh ephemeral key each time).
        #expect(try SealedBox.seal(text, to: bob.publicKey) != box)
    }

    @Test func aSeededSealIsStableAndOpensLikeARandomOne() throws {
        let seed = [UInt8](repeating: 9, count: 32), text = Array("hello".utf8)
        let a = try SealedBox.seal(text, to: bob.publicKey, ephemeralSeed: seed)
        #expect(a == (try SealedBox.seal(text, to: bob.publicKey, ephemeralSeed: seed)))
        #expect(try SealedBox.open(a, with: bob) == text)
    }

    @Test func theLimitsHold() throws {
        let most = [UInt8](repeating: 1, count: SealedBox.messageBytesMax)
        #expect(try SealedBox.seal(most, to: bob.publicKey).count == Limits.messageBytesMax)
        #expect(throws: SealedBox.Failure.tooLong(most.count + 1, max: SealedBox.messageBytesMax)) {
            try SealedBox.seal(most + [1], to: bob.publicKey)
        }
        // A key that is not a curve point has no X25519 form.
        var notAPoint = [UInt8](repeating: 0xFF, count: 32)
        notAPoint[31] = 0x7F
        #expect(throws: SealedBox.Failure.notAnAgentKey) { try SealedBox.seal([1], to: PublicKey(notAPoint)) }
    }
}
