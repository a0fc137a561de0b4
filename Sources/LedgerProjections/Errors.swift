import LedgerCore

/// Why an event was refused. Every refusal leaves the state exactly as it was.
public enum ApplyError: Error, Equatable, Sendable, CustomStringConvertible {
    case badSignature
    case wrongChain
    case oversized(bytes: Int, max: Int)
    case unknownAuthor(PublicKey)
    case staleNonce(expected: UInt64, got: UInt64)
    case futureNonce(expected: UInt64, got: UInt64)
    case feeTooLow(minimum: UInt64, offered: UInt64)
    case malformedPayload(DecodeError)
    case insufficientBalance(needed: UInt64, available: UInt64)
    case zeroAmount
    case overflow
    case alreadyRegistered(String)
    case notRegistered(String)
    case unknownValidator(ValidatorID)
    case validatorRetired(ValidatorID)
    case insufficientStake(bonded: UInt64, requested: UInt64)
    case wrongOldKey
    case keyInUse(PublicKey)
    case badRotationSignature
    case invalidProfile(String)
    case invalidAlliance(String)
    case unknownAlliance(AllianceID)
    case notOffered(AllianceID)
    case allianceExpired(AllianceID)
    case allianceNotPending(AllianceID, AllianceStatus)
    case allianceNotActive(AllianceID, AllianceStatus)
    case alreadyAccepted(AllianceID)
    case notMember(AllianceID)
    case duplicateEvent(EventID)
    case invalidEvidence(String)
    case duplicateEvidence
    case validatorJailed(ValidatorID)
    case notJailed
    case stillJailed(until: Height)
    case invalidOpinion(String)

    public var description: String {
        switch self {
        case .badSignature: "signature does not verify"
        case .wrongChain: "event is for another chain"
        case let .oversized(b, m): "event is \(b) bytes, limit \(m)"
        case let .unknownAuthor(k): "unknown author \(k.short) (no account)"
        case let .staleNonce(e, g): "stale nonce \(g): expected \(e)"
        case let .futureNonce(e, g): "future nonce \(g): expected \(e)"
        case let .feeTooLow(m, o): "fee \(o) below minimum \(m)"
        case let .malformedPayload(d): "malformed payload: \(d)"
        case let .insufficientBalance(n, a): "insufficient balance: needs \(n), has \(a)"
        case .zeroAmount: "amount must be positive"
        case .overflow: "amount overflows"
        case let .alreadyRegistered(w): "\(w) is already registered"
        case let .notRegistered(w): "\(w) is not registered"
        case let .unknownValidator(v): "unknown validator \(v.short)"
        case let .validatorRetired(v): "validator \(v.short) is retired"
        case let .insufficientStake(b, r): "bonded \(b), cannot take \(r)"
        case .wrongOldKey: "rotation does not name the current consensus key"
        case let .keyInUse(k): "key \(k.short) is or was a consensus key already"
        case .badRotationSignature: "rotation is not signed by both the old and the new key"
        case let .invalidProfile(r): "invalid agent profile: \(r)"
        case let .invalidAlliance(r): "invalid alliance proposal: \(r)"
        case let .unknownAlliance(a): "unknown alliance \(a.short)"
        case let .notOffered(a): "alliance \(a.short) was not offered to this author"
        case let .allianceExpired(a): "alliance proposal \(a.short) has expired"
        case let .allianceNotPending(a, s): "alliance \(a.short) is \(s), not pending"
        case let .allianceNotActive(a, s): "alliance \(a.short) is \(s), not active"
        case let .alreadyAccepted(a): "alliance \(a.short) already accepted by this author"
        case let .notMember(a): "author is not a member of alliance \(a.short)"
        case let .duplicateEvent(id): "event \(id.short) is already in the log or block"
        case let .invalidEvidence(r): "invalid evidence: \(r)"
        case .duplicateEvidence: "this offence was already proven and punished"
        case let .validatorJailed(v): "validator \(v.short) is jailed"
        case .notJailed: "the author is not a jailed validator"
        case let .stillJailed(h): "still jailed: may unjail from height \(h)"
        case let .invalidOpinion(r): "invalid opinion: \(r)"
        }
    }
}

/// Why a block could not be applied.
public enum BlockError: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfOrder(expected: Height, got: Height)
    case timeWentBackwards(parent: UInt64, block: UInt64)
    case event(index: Int, id: EventID, ApplyError)

    public var description: String {
        switch self {
        case let .outOfOrder(e, g): "block height \(g), expected \(e)"
        case let .timeWentBackwards(p, b): "block time \(b) is before its parent's \(p)"
        case let .event(i, id, e): "event \(i) (\(id.short)): \(e)"
        }
    }
}

extension ApplyError {
    /// A stable, machine-readable name for the rule that refused an event (the HTTP
    /// API's receipt code): the case name in snake case.
    public var code: String {
        switch self {
        case .badSignature: "bad_signature"
        case .wrongChain: "wrong_chain"
        case .oversized: "oversized"
        case .unknownAuthor: "unknown_author"
        case .staleNonce: "stale_nonce"
        case .futureNonce: "future_nonce"
        case .feeTooLow: "fee_too_low"
        case .malformedPayload: "malformed_payload"
        case .insufficientBalance: "insufficient_balance"
        case .zeroAmount: "zero_amount"
        case .overflow: "overflow"
        case .alreadyRegistered: "already_registered"
        case .notRegistered: "not_registered"
        case .unknownValidator: "unknown_validator"
        case .validatorRetired: "validator_retired"
        case .insufficientStake: "insufficient_stake"
        case .wrongOldKey: "wrong_old_key"
        case .keyInUse: "key_in_use"
        case .badRotationSignature: "bad_rotation_signature"
        case .invalidProfile: "invalid_profile"
        case .invalidAlliance: "invalid_alliance"
        case .unknownAlliance: "unknown_alliance"
        case .notOffered: "not_offered"
        case .allianceExpired: "alliance_expired"
        case .allianceNotPending: "alliance_not_pending"
        case .allianceNotActive: "alliance_not_active"
        case .alreadyAccepted: "already_accepted"
        case .notMember: "not_member"
        case .duplicateEvent: "duplicate_event"
        case .invalidEvidence: "invalid_evidence"
        case .duplicateEvidence: "duplicate_evidence"
        case .validatorJailed: "validator_jailed"
        case .notJailed: "not_jailed"
        case .stillJailed: "still_jailed"
        case .invalidOpinion: "invalid_opinion"
        }
    }
}
