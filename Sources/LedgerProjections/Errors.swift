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
    case unknownValidator(PublicKey)
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
    case kindNotActive(EventKind, ruleVersion: UInt16)
    case unknownJob(JobID)
    case invalidJob(String)
    case notJobParty(JobID)
    case wrongJobStatus(JobID, JobStatus)
    case deadlinePassed(Height)
    case missingCapability(String)
    case reputationTooLow(required: Int64, has: Int64)
    case alreadyFunded(JobID)
    case notFunded(JobID)
    case unknownMilestone(UInt16)
    case milestoneSettled(UInt16)
    case noResult(UInt16)
    case wrongSigners(String)
    case badCosignature(PublicKey)
    case deadlineNotReached(Height)
    case disputeWindowOpen(until: Height)
    case disputeWindowClosed(closedAt: Height)
    case invalidDispute(String)
    case noArbiters
    case notArbiter(JobID)
    case alreadyVoted
    case notEnoughVotes(have: Int, need: Int)
    case alreadyRated(JobID)
    case invalidRating(String)
    case invalidEndorsement(String)
    case nothingToClaim
    case nothingToRefund(JobID)
    case invalidCommission(String)
    case invalidMeme(String)
    case unknownMeme(MemeID)
    case alreadyReacted(MemeID)
    case selfInteraction
    case notAuthorized(String)
    case invalidProposal(String)
    case unknownProposal(ProposalID)
    case proposalClosed(ProposalID, ProposalStatus)
    /// Rule version 3: the author is not a bonded agent (nor a validator with power).
    case notBonded(String)
    /// Rule version 3: the author endorsed this subject within the endorsement period.
    case endorsementTooSoon(nextAt: Height)
    /// Rule version 3: a message's sealed box is too short, too long, or to oneself.
    case invalidMessage(String)
    /// Rule version 3: the sender already sent `Limits.messagesPerSenderPerBlockMax` messages in this block.
    case tooManyMessages(max: Int)
    /// Rule version 3: the author is not the job's evaluator (none named or drawn, or another).
    case notEvaluator(JobID)
    /// Rule version 3: an attestation names another result or specification than the job's.
    case invalidAttestation(String)
    /// Rule version 3: no one could be drawn to evaluate the job.
    case noEvaluators

    // long: a table, one line per refusal; split, it would read worse.
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
        case let .kindNotActive(k, v): "\(k) is not part of rule version \(v)"
        case let .unknownJob(j): "unknown job \(j.short)"
        case let .invalidJob(r): "invalid job: \(r)"
        case let .notJobParty(j): "the author is not the party of job \(j.short) this step needs"
        case let .wrongJobStatus(j, s): "job \(j.short) is \(s)"
        case let .deadlinePassed(h): "the job's deadline (height \(h)) has passed"
        case let .missingCapability(c): "the worker lacks the capability '\(c)'"
        case let .reputationTooLow(r, h): "reputation \(h) is below the required \(r)"
        case let .alreadyFunded(j): "job \(j.short) is already funded"
        case let .notFunded(j): "job \(j.short) has no escrow to act on"
        case let .unknownMilestone(m): "no milestone \(m)"
        case let .milestoneSettled(m): "milestone \(m) is already paid or refunded"
        case let .noResult(m): "no result submitted for milestone \(m)"
        case let .wrongSigners(r): "release not signed by the right parties: \(r)"
        case let .badCosignature(k): "the co-signature of \(k.short) does not verify"
        case let .deadlineNotReached(h): "no refund before the deadline (height \(h))"
        case let .disputeWindowOpen(h): "a submitted result may still be disputed until height \(h)"
        case let .disputeWindowClosed(h): "the dispute window closed at height \(h)"
        case let .invalidDispute(r): "invalid dispute: \(r)"
        case .noArbiters: "no eligible arbiter to draw"
        case let .notArbiter(j): "the author was not drawn as an arbiter of job \(j.short)"
        case .alreadyVoted: "the author already voted"
        case let .notEnoughVotes(h, n): "\(h) arbiter votes, \(n) needed"
        case let .alreadyRated(j): "the author already rated job \(j.short)"
        case let .invalidRating(r): "invalid rating: \(r)"
        case let .invalidEndorsement(r): "invalid endorsement: \(r)"
        case .nothingToClaim: "no unclaimed rewards"
        case let .nothingToRefund(j): "job \(j.short) holds nothing to refund"
        case let .invalidCommission(r): "invalid commission: \(r)"
        case let .invalidMeme(r): "invalid meme: \(r)"
        case let .unknownMeme(m): "unknown meme \(m.short)"
        case let .alreadyReacted(m): "the author already reacted to meme \(m.short)"
        case .selfInteraction: "an agent cannot react to or interact with itself"
        case let .notAuthorized(r): "not authorized: \(r)"
        case let .invalidProposal(r): "invalid proposal: \(r)"
        case let .unknownProposal(p): "unknown proposal \(p.short)"
        case let .proposalClosed(p, s): "proposal \(p.short) is \(s)"
        case let .notBonded(w): "\(w) holds no agent bond"
        case let .endorsementTooSoon(h): "one endorsement of a subject per period: the next at height \(h)"
        case let .invalidMessage(r): "invalid message: \(r)"
        case let .tooManyMessages(m): "at most \(m) messages per sender in a block"
        case let .notEvaluator(j): "the author is not the evaluator of job \(j.short)"
        case let .invalidAttestation(r): "invalid attestation: \(r)"
        case .noEvaluators: "no agent or validator can be drawn to evaluate this job"
        }
    }
}

/// Why a block could not be applied.
public enum BlockError: Error, Equatable, Sendable, CustomStringConvertible {
    case outOfOrder(expected: Height, got: Height)
    case timeWentBackwards(parent: UInt64, block: UInt64)
    case event(index: Int, id: EventID, ApplyError)
    /// The header's version does not match the chain's state commitment (version 2 for
    /// a tree-committed chain, 1 for a flat one).
    case wrongHeaderVersion(UInt16, expected: UInt16)
    /// A version 2 header's state root is not the root of the state the block leaves.
    case stateRootMismatch(header: Hash32, folded: Hash32)
    /// A version 2 header's next power hash is not the hash of the power that certifies the next block.
    case nextPowerMismatch(header: Hash32, folded: Hash32)

    public var description: String {
        switch self {
        case let .outOfOrder(e, g): "block height \(g), expected \(e)"
        case let .timeWentBackwards(p, b): "block time \(b) is before its parent's \(p)"
        case let .event(i, id, e): "event \(i) (\(id.short)): \(e)"
        case let .wrongHeaderVersion(v, e): "header version \(v), but this chain's headers are version \(e)"
        case let .stateRootMismatch(h, f): "header state root \(h.short) but the fold gives \(f.short)"
        case let .nextPowerMismatch(h, f): "header next power hash \(h.short) but the fold gives \(f.short)"
        }
    }
}

extension ApplyError {
    /// A stable, machine-readable name for the rule that refused an event (the HTTP
    /// API's receipt code): the case name in snake case.
    // long: a table, one line per refusal.
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
        case .kindNotActive: "kind_not_active"
        case .unknownJob: "unknown_job"
        case .invalidJob: "invalid_job"
        case .notJobParty: "not_job_party"
        case .wrongJobStatus: "wrong_job_status"
        case .deadlinePassed: "deadline_passed"
        case .missingCapability: "missing_capability"
        case .reputationTooLow: "reputation_too_low"
        case .alreadyFunded: "already_funded"
        case .notFunded: "not_funded"
        case .unknownMilestone: "unknown_milestone"
        case .milestoneSettled: "milestone_settled"
        case .noResult: "no_result"
        case .wrongSigners: "wrong_signers"
        case .badCosignature: "bad_cosignature"
        case .deadlineNotReached: "deadline_not_reached"
        case .disputeWindowOpen: "dispute_window_open"
        case .disputeWindowClosed: "dispute_window_closed"
        case .invalidDispute: "invalid_dispute"
        case .noArbiters: "no_arbiters"
        case .notArbiter: "not_arbiter"
        case .alreadyVoted: "already_voted"
        case .notEnoughVotes: "not_enough_votes"
        case .alreadyRated: "already_rated"
        case .invalidRating: "invalid_rating"
        case .invalidEndorsement: "invalid_endorsement"
        case .nothingToClaim: "nothing_to_claim"
        case .nothingToRefund: "nothing_to_refund"
        case .invalidCommission: "invalid_commission"
        case .invalidMeme: "invalid_meme"
        case .unknownMeme: "unknown_meme"
        case .alreadyReacted: "already_reacted"
        case .selfInteraction: "self_interaction"
        case .notAuthorized: "not_authorized"
        case .invalidProposal: "invalid_proposal"
        case .unknownProposal: "unknown_proposal"
        case .proposalClosed: "proposal_closed"
        case .notBonded: "not_bonded"
        case .endorsementTooSoon: "endorsement_too_soon"
        case .invalidMessage: "invalid_message"
        case .tooManyMessages: "too_many_messages"
        case .notEvaluator: "not_evaluator"
        case .invalidAttestation: "invalid_attestation"
        case .noEvaluators: "no_evaluators"
        }
    }
}
