/// Every bound in ChaosLedger, in one place (STYLE §6). Names carry the qualifier last.
public enum Limits {
    /// Largest stored event (envelope + payload + signature).
    public static let eventBytesMax = 4096
    public static let payloadBytesMax = eventBytesMax - Envelope.overheadBytes
    public static let blockEventsMax = 10_000
    public static let blockBytesMax = 16 << 20
    public static let memeBytesMax = 1024
    public static let memoBytesMax = 256
    public static let nameBytesMax = 64
    public static let personalityBytesMax = 64
    public static let endpointBytesMax = 256
    public static let capabilitiesMax = 32
    public static let capabilityBytesMax = 64
    public static let allianceTargetsMax = 16
    public static let allianceTextBytesMax = 512
    /// The reason given with an opinion.
    public static let reasonBytesMax = 256
    /// The agent economy's payloads (jobs, escrow, memes).
    public static let jobTitleBytesMax = 128
    public static let milestonesMax = 16
    /// Co-signatures on a multisig escrow release besides the author's envelope signature.
    public static let cosignaturesMax = 2
    public static let memeContentBytesMax = 512
    public static let memeTagsMax = 8
    public static let memeTagBytesMax = 32
    /// A `message.send`'s sealed box: ephemeral key and MAC (`sealedBoxOverheadBytes`)
    /// plus up to 976 bytes of message.
    public static let messageBytesMax = 1024
    public static let sealedBoxOverheadBytes = 48
    /// Messages one sender may send in one block (rule version 3).
    public static let messagesPerSenderPerBlockMax = 8
    public static let certificateSignersMax = 1024
    /// A signed pre-prepare, prepare, commit or checkpoint vote.
    public static let consensusMessageBytesMax = 256
    public static let genesisValidatorsMax = 1024
    public static let genesisAllocationsMax = 1_000_000
    public static let genesisBytesMax = 64 << 20
    public static let snapshotBytesMax = 1 << 30
    /// A state-sync chunk (schemas/FORMAT.md §15.2), and the leaves a server aims to put in one.
    public static let syncChunkBytesMax = 16 << 20
    public static let syncChunkLeavesTarget = 2048
    /// An audit bundle file (LedgerAudit, schemas/FORMAT.md §13), read whole into memory.
    public static let auditBundleBytesMax = 4 << 30
    /// LMDB map: initial size and the ceiling automatic growth stops at.
    public static let mapBytesInitial = 64 << 20
    public static let mapBytesMax = 1 << 40
    public static let readRangeEventsMax = 100_000
    /// HTTP API (LedgerHTTP): events in one submission, entries in one list page, and
    /// the per-client rate-limit buckets kept (beyond it new clients share one bucket).
    public static let submitEventsMax = 1000
    public static let listPageMax = 1000
    public static let listPageDefault = 100
    public static let rateLimitClientsMax = 10_000
    /// Committed events an SSE subscription reads from the log ahead of its socket: all
    /// the memory it holds besides the socket's own buffers.
    public static let subscriberReadAheadEvents = 64
    /// The id and stream indexes are caught up once they are this many blocks behind
    /// (LedgerStore/Index.swift), in transactions of at most `indexCatchUpEventsMax` events.
    public static let indexLagBlocksMax = 32
    public static let indexCatchUpEventsMax = 200_000

    // Consensus (LedgerConsensus).
    public static let blockHeaderBytesMax = 4096
    /// Heights in flight beyond the stable checkpoint: the largest window a replica accepts.
    public static let pipelineDepthMax = 64
    /// Largest message between replicas (a pre-prepare carries a whole block).
    public static let peerMessageBytesMax = 32 << 20
    /// Certified blocks in one state-transfer answer.
    public static let stateTransferBlocksMax = 16
    /// A replica answers each peer's state-transfer requests at most this often (an
    /// honest one asks once per its `fetchIntervalMs`, 400 ms by default).
    public static let fetchAnswerGapMs: UInt64 = 100
    /// Peers whose last state-transfer request a replica remembers (to pace them).
    public static let fetchPeersRememberedMax = 1_024
    /// Client events in one `requests` peer message (a node coalesces what it forwards).
    public static let requestsPerMessageMax = 10_000
    /// Bytes of client events a node passes on in one message: under a follower's frame
    /// limit (MeshConfig.followerFrameBytesMax, 4 MiB), which bounds what a follower can
    /// make a validator hold in a partial frame.
    public static let forwardBatchBytesMax = 1 << 20
    /// Client events a replica holds waiting for a block.
    public static let mempoolEventsMax = 100_000
    /// Events one author may have pending at a node, and how far ahead of its committed
    /// nonce an event may be: eleven funded keys can hold at most 2,816 of the
    /// mempool's 100,000 places, however many future nonces they sign.
    public static let authorPendingMax: UInt64 = 256
    /// Votes from other replicas remembered for equivocation evidence, per replica.
    public static let voteMemoryMax = 50_000
}
