-- ChaosLedger PostgreSQL sink, schema version 1 (`chaosledger sink postgres`).
-- Everything lives in the schema `chaosledger`. Keys, hashes and raw event bytes are
-- bytea; amounts are numeric(20,0) (they are unsigned 64-bit in the ledger). A
-- projection row's `view` is the JSON the HTTP API serves for that entity at the
-- checkpoint height (schemas/openapi.yaml), without the fields that change with the
-- height alone (an agent's status and decayed reputation, a posted job's matches):
-- `reputation_at` and `agent_status_at` below compute those. The typed columns are
-- generated from the view; `updated_height` is the height of the last block that
-- changed the row. Every write of one batch of blocks, the checkpoint among them, is
-- one transaction.

CREATE SCHEMA IF NOT EXISTS chaosledger;
SET search_path TO chaosledger;

CREATE TABLE schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Where the sink is: the last block written, with its hash and the state root after
-- it, and a snapshot of the state (schemas/FORMAT.md §7) at `snapshot_height` to
-- resume from without refolding the whole history.
CREATE TABLE checkpoint (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    chain_id text NOT NULL,
    genesis_hash bytea NOT NULL,
    height bigint NOT NULL,
    block_hash bytea NOT NULL,
    state_root bytea NOT NULL,
    next_sequence bigint NOT NULL,
    snapshot_height bigint NOT NULL,
    snapshot bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blocks (
    height bigint PRIMARY KEY,
    hash bytea NOT NULL UNIQUE,
    parent_hash bytea NOT NULL,
    view bigint NOT NULL,
    timestamp_ms bigint NOT NULL,
    proposer bytea NOT NULL,
    event_count integer NOT NULL,
    first_sequence bigint NOT NULL,
    events_root bytea NOT NULL,
    parent_state_root bytea NOT NULL,
    state_root bytea NOT NULL,
    meme text NOT NULL,
    certificate_view bigint NOT NULL,
    certificate_signers integer NOT NULL,
    sunk_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE events (
    sequence bigint PRIMARY KEY,
    id bytea NOT NULL UNIQUE,
    height bigint NOT NULL REFERENCES blocks (height),
    kind text NOT NULL,
    author bytea NOT NULL,
    nonce numeric(20,0) NOT NULL,
    fee numeric(20,0) NOT NULL,
    payload jsonb NOT NULL,
    bytes bytea NOT NULL
);
CREATE INDEX events_author ON events (author, sequence);
CREATE INDEX events_kind ON events (kind, sequence);
CREATE INDEX events_height ON events (height);

-- The chain's scalars at the checkpoint: GET /v1/state's summary and GET /v1/economy.
CREATE TABLE chain (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    summary jsonb NOT NULL,
    economy jsonb NOT NULL,
    height bigint GENERATED ALWAYS AS ((summary->>'height')::bigint) STORED,
    total_supply numeric(20,0) GENERATED ALWAYS AS ((summary->>'totalSupply')::numeric) STORED
);

CREATE TABLE accounts (
    key bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    balance numeric(20,0) GENERATED ALWAYS AS ((view->>'balance')::numeric) STORED,
    nonce numeric(20,0) GENERATED ALWAYS AS ((view->>'nonce')::numeric) STORED
);

-- One row for every block that changed an account: its balance after that block.
CREATE TABLE balance_history (
    account bytea NOT NULL,
    height bigint NOT NULL,
    balance numeric(20,0) NOT NULL,
    PRIMARY KEY (account, height)
);

CREATE TABLE validators (
    id bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    name text GENERATED ALWAYS AS (view->>'name') STORED,
    status text GENERATED ALWAYS AS (view->>'status') STORED,
    self_stake numeric(20,0) GENERATED ALWAYS AS ((view->>'selfStake')::numeric) STORED,
    delegated numeric(20,0) GENERATED ALWAYS AS ((view->>'delegated')::numeric) STORED
);

CREATE TABLE delegations (
    delegator bytea NOT NULL,
    validator bytea NOT NULL,
    amount numeric(20,0) NOT NULL,
    updated_height bigint NOT NULL,
    PRIMARY KEY (delegator, validator)
);

CREATE TABLE slashes (
    evidence bytea PRIMARY KEY,
    validator bytea NOT NULL,
    offence_height bigint NOT NULL,
    offence_view bigint NOT NULL,
    stake_before numeric(20,0) NOT NULL,
    amount numeric(20,0) NOT NULL,
    slashed_at bigint NOT NULL
);
CREATE INDEX slashes_validator ON slashes (validator);

CREATE TABLE agents (
    key bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    name text GENERATED ALWAYS AS (view->'profile'->>'name') STORED,
    active boolean GENERATED ALWAYS AS ((view->>'active')::boolean) STORED,
    bond numeric(20,0) GENERATED ALWAYS AS ((view->>'bond')::numeric) STORED,
    last_seen bigint GENERATED ALWAYS AS ((view->>'lastSeen')::bigint) STORED
);
CREATE INDEX agents_capabilities ON agents USING gin ((view->'profile'->'capabilities'));

CREATE TABLE alliances (
    id bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    status text GENERATED ALWAYS AS (view->>'status') STORED
);

-- Jobs with their escrow and dispute (GET /v1/jobs/{id}, without `matches`).
CREATE TABLE jobs (
    id bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    client bytea GENERATED ALWAYS AS (decode(view->>'client', 'hex')) STORED,
    status text GENERATED ALWAYS AS (view->>'status') STORED,
    funded boolean GENERATED ALWAYS AS ((view->>'funded')::boolean) STORED,
    escrowed numeric(20,0) GENERATED ALWAYS AS ((view->>'escrowed')::numeric) STORED
);
CREATE INDEX jobs_client ON jobs (client);
CREATE VIEW disputes AS
    SELECT id AS job, view->'dispute' AS dispute, status, updated_height FROM jobs WHERE view ? 'dispute';

-- Stored reputation (value as of `as_of`, before decay) and influence counters.
CREATE TABLE reputation (
    agent bytea PRIMARY KEY,
    value bigint NOT NULL,
    as_of bigint NOT NULL,
    updated_height bigint NOT NULL
);

CREATE TABLE memes (
    id bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    author bytea GENERATED ALWAYS AS (decode(view->>'author', 'hex')) STORED
);

CREATE TABLE proposals (
    id bytea PRIMARY KEY,
    view jsonb NOT NULL,
    updated_height bigint NOT NULL,
    status text GENERATED ALWAYS AS (view->>'status') STORED
);

-- Reputation decays by half every `half_life` blocks, linearly between halvings
-- (schemas/ECONOMY.md): the value GET /v1/reputation/{key} shows at `height`.
CREATE FUNCTION reputation_at(value bigint, as_of bigint, height bigint, half_life bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN height <= as_of OR value = 0 OR half_life <= 0 THEN value
        WHEN (height - as_of) / half_life >= 63 THEN 0
        ELSE (SELECT v1 - trunc((v1::numeric * ((height - as_of) % half_life)) / (2 * half_life))::bigint
              FROM (SELECT trunc(value::numeric / (2::numeric ^ ((height - as_of) / half_life)))::bigint AS v1) q)
    END
$$;

-- An agent's lifecycle status at `height` (rule version 3; schemas/ECONOMY.md).
CREATE FUNCTION agent_status_at(view jsonb, height bigint, idle_blocks bigint, offline_blocks bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN NOT (view->>'active')::boolean THEN 'retired'
        WHEN NOT view ? 'lastSeen' THEN 'active'
        WHEN height - least(height, (view->>'lastSeen')::bigint) <= idle_blocks THEN 'active'
        WHEN height - least(height, (view->>'lastSeen')::bigint) <= offline_blocks THEN 'idle'
        ELSE 'offline'
    END
$$;

-- Agents with their status and decayed reputation at the checkpoint height, as
-- GET /v1/agents/{key} shows them.
CREATE VIEW agents_now AS
    SELECT a.key, a.name, a.active, a.bond, a.view,
           agent_status_at(a.view, c.height, coalesce((c.economy->'trust'->>'agentIdleBlocks')::bigint, 0),
                           coalesce((c.economy->'trust'->>'agentOfflineBlocks')::bigint, 0)) AS status,
           coalesce(reputation_at(r.value, r.as_of, c.height, (c.economy->'parameters'->>'reputationHalfLifeBlocks')::bigint), 0) AS reputation
    FROM agents a CROSS JOIN chain c LEFT JOIN reputation r ON r.agent = a.key;

INSERT INTO schema_version (version) VALUES (1);
