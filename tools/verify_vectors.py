#!/usr/bin/env python3
"""Independent check of schemas/vectors.json, written from schemas/FORMAT.md alone.

Uses only the Python standard library (hashlib's BLAKE2b) and the `cryptography`
package's Ed25519. Exits non-zero on the first mismatch. Usage:
    python3 tools/verify_vectors.py [schemas/vectors.json]
"""
import hashlib
import json
import struct
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives import serialization
from cryptography.exceptions import InvalidSignature


def h(b: bytes) -> bytes:
    return hashlib.blake2b(b, digest_size=32).digest()


def domain(tag: str, version: int, chain: bytes) -> bytes:
    return tag.encode() + b"\x00" + struct.pack(">H", version) + chain


def verify(pub: bytes, sig: bytes, msg: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False


def merkle(ids):
    if not ids:
        return h(b"")
    leaves = [h(b"\x00" + i) for i in ids]

    def rec(xs):
        if len(xs) == 1:
            return xs[0]
        k = 1
        while k * 2 < len(xs):
            k *= 2
        return h(b"\x01" + rec(xs[:k]) + rec(xs[k:]))

    return rec(leaves)


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


class Reader:
    """Big-endian reads that fail on truncation (FORMAT.md §1)."""

    def __init__(self, b: bytes, what: str):
        self.b, self.i, self.what = b, 0, what

    def take(self, n):
        if self.i + n > len(self.b):
            fail(f"{self.what}: truncated")
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def blob16(self):
        return self.take(self.u16())

    def end(self):
        if self.i != len(self.b):
            fail(f"{self.what}: {len(self.b) - self.i} trailing bytes")


def consensus_message(b: bytes, chain: bytes):
    """A signed consensus vote (FORMAT.md §9): returns (kind, height, view, block, extra, signer, signature, statement)."""
    if len(b) > 256:
        fail("consensus message over 256 bytes")
    r = Reader(b, "consensus message")
    if r.u16() != 1:
        fail("consensus message version")
    kind = r.u8()
    if kind in (1, 2, 3):
        view, height, block = r.u64(), r.u64(), r.take(32)
        extra = b""
        tag = {1: "CHAOSLEDGER/PREPREPARE", 2: "CHAOSLEDGER/PREPARE", 3: "CHAOSLEDGER/COMMIT"}[kind]
        statement = domain(tag, 1, chain) + struct.pack(">QQ", height, view) + block
    elif kind == 4:
        view = 0
        height, block, extra = r.u64(), r.take(32), r.take(32)
        statement = domain("CHAOSLEDGER/CHECKPOINT", 1, chain) + struct.pack(">Q", height) + block + extra
    else:
        fail(f"consensus message kind {kind}")
    signer, sig = r.take(32), r.take(64)
    r.end()
    return kind, height, view, block, extra, signer, sig, statement


def check_payload(e, payload: bytes, chain: bytes):
    """The payloads added with slashing (FORMAT.md §3): unjail, evidence, opinion."""
    kind = e["kindCode"]
    if kind == 13 and payload:
        fail("validator.unjail: payload must be empty")
    if kind == 50:
        r = Reader(payload, "evidence")
        first, second = r.blob16(), r.blob16()
        r.end()
        a, b = consensus_message(first, chain), consensus_message(second, chain)
        # Evidence (FORMAT.md §9): one signer, one kind, height and view, two different
        # blocks (or checkpoint roots), both signatures valid.
        if a[5] != b[5] or a[0] != b[0] or a[1] != b[1] or a[2] != b[2]:
            fail("evidence: not the same signer, kind, height and view")
        if (a[3], a[4]) == (b[3], b[4]):
            fail("evidence: both messages name the same block")
        for m in (a, b):
            if not verify(m[5], m[6], m[7]):
                fail("evidence: a vote signature does not verify")
    if kind == 60:
        r = Reader(payload, "opinion")
        r.u64(); r.u64(); r.take(32)
        if r.u8() not in (1, 2):
            fail("opinion: unknown verdict")
        reason = r.blob16()
        if len(reason) > 256:
            fail("opinion: reason over 256 bytes")
        reason.decode("utf-8")
        r.end()


def check_genesis(g: bytes, chain: bytes):
    """Genesis version 2 (FORMAT.md §6)."""
    r = Reader(g, "genesis")
    if r.u16() != 2 or r.take(32) != chain:
        fail("genesis version or chain")
    r.u64()  # timestamp
    for _ in range(6):
        r.u64()
    r.u32(); r.u32()  # block limits
    if r.u32() > 10_000:
        fail("genesis slashFractionBps over 10,000")
    r.u64()  # jailBlocks
    def sorted_by_key(what, rest):
        last = b""
        for _ in range(r.u32()):
            key = r.take(32)
            if key <= last:
                fail(f"genesis {what} not sorted")
            last = key
            rest()
    sorted_by_key("validators", lambda: (r.blob16(), r.blob16(), r.u64()))
    sorted_by_key("allocations", r.u64)
    r.end()


TAGS = {t: t.encode() + b"\x00" for t in ("CHAOSLEDGER/STATE-KEY", "CHAOSLEDGER/STATE-VALUE", "CHAOSLEDGER/STATE-LEAF",
                                           "CHAOSLEDGER/STATE-NODE", "CHAOSLEDGER/POWER", "CHAOSLEDGER/STREAM")}


def bit(k: bytes, d: int) -> int:
    return (k[d // 8] >> (7 - d % 8)) & 1


def tree_root(leaves, depth=0):
    """FORMAT.md §7.2: no leaves is 32 zero bytes; one leaf is that leaf; else a node."""
    if not leaves:
        return bytes(32)
    if len(leaves) == 1:
        k, vh = leaves[0]
        return h(TAGS["CHAOSLEDGER/STATE-LEAF"] + k + vh)
    left = [x for x in leaves if not bit(x[0], depth)]
    right = [x for x in leaves if bit(x[0], depth)]
    return h(TAGS["CHAOSLEDGER/STATE-NODE"] + tree_root(left, depth + 1) + tree_root(right, depth + 1))


def proof_root(b: bytes):
    """FORMAT.md §14.1: the (kind, id, value, root) a state proof implies."""
    kind, = struct.unpack(">xxB", b[0:3])
    n, = struct.unpack(">H", b[3:5])
    ident = b[5:5 + n]
    i = 5 + n + 8
    t = b[i]; i += 1
    key = h(TAGS["CHAOSLEDGER/STATE-KEY"] + bytes([kind]) + ident)
    value = None
    if t == 1:
        ln, = struct.unpack(">I", b[i:i + 4]); value = b[i + 4:i + 4 + ln]; i += 4 + ln
        cur = h(TAGS["CHAOSLEDGER/STATE-LEAF"] + key + h(TAGS["CHAOSLEDGER/STATE-VALUE"] + value))
    elif t == 2:
        cur = bytes(32)
    else:
        other, vh = b[i:i + 32], b[i + 32:i + 64]; i += 64
        cur = h(TAGS["CHAOSLEDGER/STATE-LEAF"] + other + vh)
    count, = struct.unpack(">H", b[i:i + 2]); i += 2
    for j in range(count):
        sib = b[i + 32 * j:i + 32 * j + 32]
        d = count - 1 - j
        cur = h(TAGS["CHAOSLEDGER/STATE-NODE"] + (sib + cur if bit(key, d) else cur + sib))
    if i + 32 * count != len(b):
        fail("state proof: trailing bytes")
    return kind, ident, value, cur


def events_path_root(event_id: bytes, b: bytes):
    """FORMAT.md §14.2: u32 index | u32 count | u16 n | n x 32, checked as RFC 9162 §2.1.3.2."""
    index, count, n = struct.unpack(">IIH", b[0:10])
    fn, sn, r = index, count - 1, h(b"\x00" + event_id)
    for j in range(n):
        p = b[10 + 32 * j:42 + 32 * j]
        if fn & 1 or fn == sn:
            r = h(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1; sn >>= 1
        else:
            r = h(b"\x01" + r + p)
        fn >>= 1; sn >>= 1
    return index, r if sn == 0 else None


def genesis_state(g: bytes, genesis_hash: bytes):
    """The genesis state (FORMAT.md §6.1) of a version 2, 3 or 4 genesis, as its entries in
    the §7.2 leaf encodings {(kind, id): value}: the chain, the epoch power, the accounts,
    the validators and, from version 3 on, the economy scalars. Returns (entries, version,
    state commitment)."""
    q = lambda n: struct.pack(">Q", n)
    r = Reader(g, "genesis")
    version = r.u16()
    if version not in (2, 3, 4):
        fail(f"genesis version {version}: this check reads 2 to 4")
    chain, timestamp = r.take(32), r.u64()
    start = r.i
    min_fee, min_stake = r.u64(), r.u64()
    for _ in range(4):
        r.u64()  # unbonding blocks, alliance windows, checkpoint interval
    r.u32(); r.u32(); r.u32(); r.u64()  # block limits, slash bps, jail blocks
    parameters = g[start:r.i]
    validators = [(r.take(32), r.blob16(), r.blob16(), r.u64()) for _ in range(r.u32())]
    allocations = [(r.take(32), r.u64()) for _ in range(r.u32())]
    economy = None
    trust = b""
    if version >= 3:
        rule_version = r.u16()
        start = r.i
        r.take(68)  # economy parameters: u64 u32 u32 u64 u64 u32 u32 u64 u32 u64 u64
        economy = g[start:r.i]
    commitment = r.u8() if version == 4 else 1
    if economy is not None and rule_version >= 3:
        # Rule version 3: the trust parameters (u64 u64 u32 u64 u32 u64 u64 u64 u64).
        start = r.i
        r.take(64)
        trust = g[start:r.i]
    r.end()
    accounts = {a: amount for a, amount in allocations}
    for key, _, _, _ in validators:
        accounts.setdefault(key, 0)
    supply = sum(amount for _, amount in allocations) + sum(stake for *_, stake in validators)
    entries = {(1, b""): chain + genesis_hash + parameters + q(0) + q(timestamp) + q(supply) + q(0) + q(0) + q(0)}
    power = sorted((key, stake) for key, _, _, stake in validators if stake >= min_stake)
    entries[(2, b"")] = struct.pack(">I", len(power)) + b"".join(k + q(p) for k, p in power)
    for a, balance in accounts.items():
        entries[(3, a)] = a + q(balance) + q(0)
    for key, name, personality, stake in validators:
        str16 = lambda b: struct.pack(">H", len(b)) + b
        # id, name, personality, consensus key, self stake, delegated, status active,
        # registered at, jailed until, key history [(0, key)]
        entries[(4, key)] = (key + str16(name) + str16(personality) + key + q(stake) + q(0) + b"\x01" + q(0) + q(0)
                             + struct.pack(">I", 1) + q(0) + key)
    if economy is not None:
        # Rule version, rule history [(0, version)], economy parameters, base fee (=
        # baseFeeMin), gas used, fee pool, last proposer, minted, fees burned.
        base_fee_min, = struct.unpack(">Q", economy[16:24])
        entries[(12, b"")] = (struct.pack(">HI", rule_version, 1) + q(0) + struct.pack(">H", rule_version) + economy
                              + q(base_fee_min) + q(0) + q(0) + bytes(32) + q(0) + q(0) + trust)
    return entries, version, commitment


def genesis_snapshot(entries, commitment: int):
    """The genesis state's canonical encoding (§7): version 2 (flat) or 3 (tree), the chain
    entry as its header, each map section its entries in key order, everything the genesis
    leaves empty as a zero count."""
    u32 = lambda n: struct.pack(">I", n)
    section = lambda kind: u32(sum(1 for k in entries if k[0] == kind)) + b"".join(v for k, v in sorted(entries.items()) if k[0] == kind)
    out = (struct.pack(">H", 3 if commitment == 2 else 2) + entries[(1, b"")] + section(3) + section(4)
           + u32(0) * 4                            # delegations, unbondings, agents, alliances
           + entries[(2, b"")]                     # epoch power
           + u32(0) * 3)                           # slashes, offences punished, opinion counts
    if (12, b"") in entries:
        out += b"\xec" + entries[(12, b"")] + u32(0) * 8   # the economy's scalars, then its eight maps and lists
        if struct.unpack(">H", entries[(12, b"")][:2])[0] >= 3:
            out += u32(0) * 2                          # rule version 3: origins, pairs
    if commitment == 2:
        out += u32(0)                              # streams
    return out


def check_flat_genesis_root(g: bytes, root_hex: str, what: str):
    """A flat chain's genesis state root (§7): BLAKE2b-256 of its version 2 snapshot."""
    entries, _, commitment = genesis_state(g, h(g))
    if commitment != 1:
        fail(f"{what}: not a flat genesis")
    if h(genesis_snapshot(entries, 1)).hex() != root_hex:
        fail(f"{what}: the state root derived from the genesis (§6.1, §7) differs")


def check_state_tree(t, chain: bytes, doc):
    g = bytes.fromhex(t["genesis"])
    if h(g).hex() != t["genesisHash"] or g[0:2] != b"\x00\x04" or g[2:34] != chain:
        fail("tree genesis: version 4 and the chain")
    if genesis_state(g, h(g))[2] != 2:
        fail("tree genesis: state commitment 2 (tree)")
    leaves = []
    for l in t["leaves"]:
        ident, value = bytes.fromhex(l["id"]), bytes.fromhex(l["value"])
        if h(TAGS["CHAOSLEDGER/STATE-KEY"] + bytes([l["kind"]]) + ident).hex() != l["key"]:
            fail(f"leaf {l['kind']}/{l['id'][:12]}: key")
        if h(TAGS["CHAOSLEDGER/STATE-VALUE"] + value).hex() != l["valueHash"]:
            fail(f"leaf {l['kind']}/{l['id'][:12]}: value hash")
        if l["kind"] == 3 and (value[:32] != ident or len(value) != 48):
            fail("account leaf: value is b32 account | u64 balance | u64 nonce")
        leaves.append((bytes.fromhex(l["key"]), bytes.fromhex(l["valueHash"])))
    if sorted(l["kind"] for l in t["leaves"]) != [1, 2, 3, 3, 3, 4, 12]:
        fail("tree leaves: chain, power, three accounts, the validator, the economy")
    if tree_root(leaves).hex() != t["root"]:
        fail("state tree root")
    # The same leaves derived from the genesis alone (§6.1), not read from the vectors.
    derived, _, _ = genesis_state(g, h(g))
    given = {(l["kind"], bytes.fromhex(l["id"])): bytes.fromhex(l["value"]) for l in t["leaves"]}
    for k in sorted(set(derived) | set(given)):
        if derived.get(k) != given.get(k):
            fail(f"genesis state (§6.1): leaf {k[0]}/{k[1].hex()[:12]} derived {(derived.get(k) or b'').hex()[:40]}… given {(given.get(k) or b'').hex()[:40]}…")
    derived_root = tree_root([(h(TAGS["CHAOSLEDGER/STATE-KEY"] + bytes([k]) + i), h(TAGS["CHAOSLEDGER/STATE-VALUE"] + v))
                              for (k, i), v in derived.items()])
    if derived_root.hex() != t["root"]:
        fail("genesis state (§6.1): root")
    # The genesis state's snapshot (§7, version 3), built from the same derived entries.
    snapshot = genesis_snapshot(derived, 2)
    if snapshot != bytes.fromhex(t["snapshot"]):
        given = bytes.fromhex(t["snapshot"])
        at = next((i for i in range(min(len(given), len(snapshot))) if given[i] != snapshot[i]), min(len(given), len(snapshot)))
        fail(f"genesis snapshot (§7): differs at byte {at} of {len(given)} (derived {len(snapshot)} bytes)")
    kind, ident, value, root = proof_root(bytes.fromhex(t["inclusionProof"]))
    if kind != 3 or value is None or root.hex() != t["root"] or value[:32] != ident:
        fail("inclusion proof")
    balance, = struct.unpack(">Q", value[32:40])
    if balance != 50_000:
        fail("inclusion proof: alice's balance")
    kind, ident, value, root = proof_root(bytes.fromhex(t["exclusionProof"]))
    if kind != 3 or value is not None or root.hex() != t["root"]:
        fail("exclusion proof")
    validator = bytes.fromhex(next(k["publicKey"] for k in doc["keys"] if k["label"] == "validator"))
    if h(TAGS["CHAOSLEDGER/POWER"] + struct.pack(">I", 1) + validator + struct.pack(">Q", 1_000_000)).hex() != t["powerHash"]:
        fail("power hash")
    ids = [bytes.fromhex(i) for i in doc["block"]["eventIDs"]]
    index, r = events_path_root(ids[2], bytes.fromhex(t["eventPath"]))
    if index != 2 or r is None or r.hex() != t["eventPathRoot"] or r.hex() != doc["block"]["eventsRoot"]:
        fail("event path")
    # §7.3: u8 tag | b32 id | u64 count | b32 head, head chained over the ids.
    head = bytes(32)
    for i in t["streamIds"]:
        head = h(TAGS["CHAOSLEDGER/STREAM"] + head + bytes.fromhex(i))
    alice = bytes.fromhex(next(k["publicKey"] for k in doc["keys"] if k["label"] == "alice"))
    if bytes([1]) + alice + struct.pack(">Q", len(t["streamIds"])) + head != bytes.fromhex(t["streamEntry"]):
        fail("stream entry")
    # §15.2: the four chunks of depth 2 each lead to the root, and together hold every leaf once.
    held = []
    for i, c in enumerate(t["syncChunks"]):
        depth, index, entries = chunk_root(bytes.fromhex(c), bytes.fromhex(t["root"]))
        if (depth, index) != (2, i):
            fail("sync chunks: depth 2, indexes 0 to 3")
        held += [(k, i.hex(), v.hex()) for k, i, v in entries]
    if sorted(held) != sorted((l["kind"], l["id"], l["value"]) for l in t["leaves"]):
        fail("sync chunks: not every leaf exactly once")


def chunk_root(b: bytes, chain_root: bytes):
    """A state-sync chunk (§15.2): returns (depth, index, [(kind, id, value)]) after checking
    that its entries and siblings lead to `chain_root`."""
    r = Reader(b, "sync chunk")
    if r.u16() != 1:
        fail("sync chunk: version")
    r.u64()  # height
    depth, index = r.u8(), r.u32()
    ids = {1: 0, 2: 0, 12: 0, 5: 64, 15: 64, 10: 49, 21: 33}
    entries = []
    for _ in range(r.u32()):
        kind = r.u8()
        ident = r.take(ids.get(kind, 32))
        entries.append((kind, ident, r.take(r.u32())))
    siblings = []
    for _ in range(depth):
        tag = r.u8()
        siblings.append((tag, r.take(64) if tag == 1 else r.take(32) if tag == 2 else b""))
    r.end()
    leaves = [(h(TAGS["CHAOSLEDGER/STATE-KEY"] + bytes([k]) + i), h(TAGS["CHAOSLEDGER/STATE-VALUE"] + v)) for k, i, v in entries]
    keys = [k for k, _ in leaves]
    if keys != sorted(set(keys)) or any(int.from_bytes(k, "big") >> (256 - depth) != index for k in keys if depth):
        fail("sync chunk: keys not increasing or outside the prefix")
    cur, count = tree_root(leaves, depth), min(len(leaves), 2)
    leaf = lambda k, v: h(TAGS["CHAOSLEDGER/STATE-LEAF"] + k + v)
    node = lambda a, b: h(TAGS["CHAOSLEDGER/STATE-NODE"] + a + b)
    for j in range(depth - 1, -1, -1):
        tag, body = siblings[j]
        s, n = (bytes(32), 0) if tag == 0 else (leaf(body[:32], body[32:]), 1) if tag == 1 else (body, 2)
        if (count, n) in ((0, 0), (1, 0)):
            pass
        elif (count, n) == (0, 1):
            cur = s
        else:
            cur = node(s, cur) if (index >> (depth - 1 - j)) & 1 else node(cur, s)
        count = min(count + n, 2)
    if cur != chain_root:
        fail(f"sync chunk {index} of depth {depth}: does not lead to the state root")
    return depth, index, entries


def check_quorum(q, chain: bytes):
    """A certificate under several signers (§4.2): strictly increasing signers, each holding
    power, each vote verifying, and signed power × 3 > total power × 2."""
    powers = {bytes.fromhex(p["key"]): p["power"] for p in q["powers"]}
    total = sum(powers.values())
    msg = bytes.fromhex(q["commitMessage"])

    def signed_power(cert: bytes):
        c = Reader(cert, "quorum certificate")
        if c.u16() != 1:
            fail("quorum certificate: version")
        height, view, block = c.u64(), c.u64(), c.take(32)
        if domain("CHAOSLEDGER/COMMIT", 1, chain) + struct.pack(">QQ", height, view) + block != msg:
            fail("quorum certificate: commit message")
        last, signed = b"", 0
        for _ in range(c.u16()):
            key, sig = c.take(32), c.take(64)
            if key <= last or key not in powers or not verify(key, sig, msg):
                fail("quorum certificate: a signer out of order, without power, or whose vote does not verify")
            last, signed = key, signed + powers[key]
        c.end()
        return signed

    if not 3 * signed_power(bytes.fromhex(q["certificate"])) > 2 * total:
        fail("quorum: three of four equal powers must be a quorum")
    if 3 * signed_power(bytes.fromhex(q["tooFew"])) > 2 * total:
        fail("quorum: two of four equal powers must not be")


def check_lmdb(records, doc, chain: bytes):
    """The log's main environment after the version 2 genesis and block 1 (§5): each
    event record is its id and bytes, each other record a checksum of its body."""
    by = {(r["db"], bytes.fromhex(r["key"])): bytes.fromhex(r["value"]) for r in records}
    u64 = lambda n: struct.pack(">Q", n)

    def sealed(db, key, what):
        v = by.get((db, key))
        if v is None or len(v) < 32 or h(v[32:]) != v[:32]:
            fail(f"lmdb {what}: missing, or its checksum is not BLAKE2b-256 of its body")
        return v[32:]

    ids = [bytes.fromhex(i) for i in doc["block"]["eventIDs"]]
    for seq, i in enumerate(ids):
        v = by.get(("events", u64(seq)))
        if v is None or v[:32] != i or h(v[32:]) != i:
            fail(f"lmdb events[{seq}]: not b32 id | event bytes with BLAKE2b(bytes) = id")
    body = sealed("blocks", u64(1), "blocks[1]")
    r = Reader(body, "blocks[1]")
    header, cert = r.take(r.u32()), r.take(len(body) - 4 - len(bytes.fromhex(doc["block"]["header"])) - 8)
    if header.hex() != doc["block"]["header"] or cert.hex() != doc["block"]["certificate"] or r.u64() != 0:
        fail("lmdb blocks[1]: not blob32 header | certificate | u64 first sequence")
    r.end()
    g = bytes.fromhex(doc["genesis"])
    if sealed("meta", b"chain", "meta[chain]") != struct.pack(">H", 1) + chain + h(g):
        fail("lmdb meta[chain]: not u16 format version | chain id | genesis hash")
    if sealed("meta", b"genesis", "meta[genesis]") != g:
        fail("lmdb meta[genesis]: not the genesis bytes")
    if sealed("meta", b"head", "meta[head]") != u64(1) + bytes.fromhex(doc["block"]["blockHash"]) + u64(len(ids)):
        fail("lmdb meta[head]: not u64 height | head hash | u64 next sequence")
    if len(by) != len(ids) + 4:
        fail(f"lmdb: {len(by)} records, expected {len(ids)} events, one block and three meta records")


def parse_header(hb: bytes):
    """A block header (§4.0): a dict of its fields."""
    r = Reader(hb, "header")
    hd = {"version": r.u16(), "chain": r.take(32), "height": r.u64(), "parent": r.take(32), "view": r.u64(),
          "timestamp": r.u64(), "proposer": r.take(32), "count": r.u32(), "eventsRoot": r.take(32), "parentStateRoot": r.take(32)}
    if hd["version"] == 2:
        hd["stateRoot"], hd["nextPowerHash"] = r.take(32), r.take(32)
    hd["meme"] = r.blob16()
    r.end()
    return hd


def quorum_of(cert_votes, power, msg, what):
    """Votes (key, sig) strictly increasing, each with power, verifying msg; a quorum of power (§4.2)."""
    last, signed = b"", 0
    for key, sig in cert_votes:
        if key <= last or key not in power or not verify(key, sig, msg):
            fail(f"{what}: a signer out of order, without power, or whose vote does not verify")
        last, signed = key, signed + power[key]
    if not 3 * signed > 2 * sum(power.values()):
        fail(f"{what}: no quorum")


def votes(r: Reader):
    return [(r.take(32), r.take(64)) for _ in range(r.u16())]


def check_bundle(v, chain: bytes):
    """An audit bundle from a snapshot (§13), checked as far as bytes go without a fold:
    the frame and its hash, the power change walked from the genesis power (§14.3), each
    block's hash link, events root, event signatures and certificate under the bundle's
    validator sets, the state roots the headers commit, and the checkpoint certificates
    over them. The snapshot's own root needs the fold of §15.3 and FOLD.md."""
    b = bytes.fromhex(v["bytes"])
    if b[0:8] != b"CLBUNDLE" or struct.unpack(">H", b[8:10])[0] != 2:
        fail("bundle: magic or version")
    length, = struct.unpack(">Q", b[10:18])
    if len(b) != 18 + length + 32 or h(b[:-32]) != b[-32:]:
        fail("bundle: length or hash")
    r = Reader(b[18:-32], "bundle")
    genesis = r.take(r.u32())
    if genesis.hex() != v["genesis"] or genesis[0:2] != b"\x00\x04" or genesis[2:34] != chain:
        fail("bundle: genesis (version 4, this chain)")
    entries, _, commitment = genesis_state(genesis, h(genesis))
    if commitment != 2:
        fail("bundle: a tree-committed genesis")
    pr = Reader(entries[(2, b"")], "genesis power")
    power = {pr.take(32): pr.u64() for _ in range(pr.u32())}
    frm, to = r.u64(), r.u64()
    if (frm, to) != (v["fromHeight"], v["toHeight"]) or r.u8() != 1:
        fail("bundle: range or snapshot flag")
    snapshot = r.take(r.u32())
    if h(snapshot).hex() != v["snapshotHash"] or snapshot[0:2] != b"\x00\x03" or snapshot[2:34] != chain or snapshot[34:66] != h(genesis):
        fail("bundle: snapshot hash, version 3, chain or genesis hash")
    sets = []
    for _ in range(r.u32()):
        start = r.u64()
        sets.append((start, {m[0]: m[2] for m in [(r.take(32), r.take(32), r.u64()) for _ in range(r.u16())]}))
    blocks = []
    for _ in range(r.u32()):
        sb = Reader(r.take(r.u32()), "stored block")
        header = sb.take(sb.u32())
        if sb.u16() != 1:
            fail("bundle: certificate version")
        c_height, c_view, c_hash = sb.u64(), sb.u64(), sb.take(32)
        cvotes = votes(sb)
        sb.u64()
        sb.end()
        events = [r.blob16() for _ in range(r.u32())]
        blocks.append((header, (c_height, c_view, c_hash, cvotes), events))
    roots = [r.take(32) for _ in range(r.u32())]
    changes = []
    for _ in range(r.u32()):
        ch, cc = r.take(r.u32()), r.take(r.u32())
        changes.append((ch, cc, [(r.take(32), r.u64()) for _ in range(r.u32())]))
    checkpoints = [r.take(r.u32()) for _ in range(r.u32())]
    r.end()
    # The power changes from the genesis power (§14.4 step 3): each header certified by the
    # power before it, committing the new power.
    walked = []
    for ch, cc, new in changes:
        hd = parse_header(ch)
        c = Reader(cc, "power change certificate")
        if c.u16() != 1:
            fail("power change: certificate version")
        height, view, blk = c.u64(), c.u64(), c.take(32)
        pv = votes(c)
        c.end()
        if blk != h(ch) or height != hd["height"] or hd["height"] > frm:
            fail("power change: certificate for another block, or after the snapshot")
        quorum_of(pv, power, domain("CHAOSLEDGER/COMMIT", 1, chain) + struct.pack(">QQ", height, view) + blk,
                  f"power change {height} certificate")
        ph = h(TAGS["CHAOSLEDGER/POWER"] + struct.pack(">I", len(new)) + b"".join(k + struct.pack(">Q", p) for k, p in sorted(new)))
        if ph != hd["nextPowerHash"]:
            fail("power change: the header does not commit the listed power")
        power = dict(new)
        walked.append(hd["height"])
    if walked != v["powerChangeHeights"]:
        fail("bundle: power change heights")
    if not sets or sets[0][1] != power:
        fail("bundle: the first validator set is not the power the walk ends at")
    parent_hash = h(changes[-1][0]) if changes and parse_header(changes[-1][0])["height"] == frm else None
    if [x.hex() for x in roots] != v["stateRoots"] or len(roots) != to - frm + 1:
        fail("bundle: state roots")
    events = 0
    for i, (header, (c_height, c_view, c_hash, cvotes), evs) in enumerate(blocks):
        hd = parse_header(header)
        if hd["height"] != frm + 1 + i or hd["chain"] != chain or hd["version"] != 2:
            fail(f"bundle block {i}: height, chain or version")
        if parent_hash is not None and hd["parent"] != parent_hash:
            fail(f"bundle block {hd['height']}: parent hash")
        parent_hash = h(header)
        if hd["parentStateRoot"] != roots[i] or hd["stateRoot"] != roots[i + 1]:
            fail(f"bundle block {hd['height']}: state roots")
        if merkle([h(e) for e in evs]) != hd["eventsRoot"] or len(evs) != hd["count"]:
            fail(f"bundle block {hd['height']}: events root")
        for e in evs:
            if not verify(e[36:68], e[-64:], domain("CHAOSLEDGER/EVENT", 1, chain) + e[:-64]):
                fail(f"bundle block {hd['height']}: an event signature")
        events += len(evs)
        active = [p for s0, p in sets if s0 <= hd["height"]][-1]
        if c_height != hd["height"] or c_hash != parent_hash:
            fail(f"bundle block {hd['height']}: certificate for another block")
        quorum_of(cvotes, active, domain("CHAOSLEDGER/COMMIT", 1, chain) + struct.pack(">QQ", c_height, c_view) + c_hash,
                  f"bundle block {hd['height']} certificate")
    if events != v["events"]:
        fail("bundle: event count")
    heights = []
    hashes = {frm: h(changes[-1][0]) if changes else None}
    hashes.update({parse_header(hb)["height"]: h(hb) for hb, _, _ in blocks})
    for cb in checkpoints:
        c = Reader(cb, "checkpoint certificate")
        height, blk, root = c.u64(), c.take(32), c.take(32)
        cv = votes(c)
        c.end()
        if blk != hashes.get(height) or root != roots[height - frm]:
            fail(f"checkpoint certificate {height}: block hash or state root")
        # Signed by the power that certifies the block after it.
        active = [p for s0, p in sets if s0 <= height + 1][-1]
        quorum_of(cv, active, domain("CHAOSLEDGER/CHECKPOINT", 1, chain) + struct.pack(">Q", height) + blk + root,
                  f"checkpoint certificate {height}")
        heights.append(height)
    if heights != v["checkpointHeights"]:
        fail("bundle: checkpoint heights")
    return len(blocks), events


def main(path):
    doc = json.load(open(path))
    chain = bytes.fromhex(doc["chainIdBytes"])
    if chain != doc["chainId"].encode().ljust(32, b"\x00"):
        fail("chain id is not the name zero-padded to 32 bytes")
    keys = {}
    for k in doc["keys"]:
        sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(k["seed"]))
        pub = sk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if pub.hex() != k["publicKey"]:
            fail(f"key {k['label']}: public key from seed differs")
        keys[pub] = sk
    checked = 0
    for e in doc["events"]:
        b = bytes.fromhex(e["bytes"])
        # Envelope: u16 version | u16 kind | 32 chain | 32 author | u64 nonce | u64 fee | u32 len | payload | 64 sig
        version, kind = struct.unpack(">HH", b[0:4])
        author = b[36:68]
        nonce, fee, plen = struct.unpack(">QQI", b[68:88])
        payload = b[88:88 + plen]
        sig = b[88 + plen:]
        if version != 1 or kind != e["kindCode"] or b[4:36] != chain:
            fail(f"{e['kind']}: header fields")
        if author.hex() != e["author"] or nonce != e["nonce"] or fee != e["fee"] or payload.hex() != e["payload"]:
            fail(f"{e['kind']}: envelope fields")
        if len(sig) != 64 or sig.hex() != e["signature"]:
            fail(f"{e['kind']}: signature placement")
        unsigned = b[:-64]
        if unsigned.hex() != e["unsigned"]:
            fail(f"{e['kind']}: unsigned bytes")
        msg = domain("CHAOSLEDGER/EVENT", 1, chain) + unsigned
        if msg.hex() != e["signingMessage"]:
            fail(f"{e['kind']}: signing message")
        if not verify(author, sig, msg):
            fail(f"{e['kind']}: signature does not verify")
        # Ed25519 is deterministic: re-signing gives the same bytes.
        if keys[author].sign(msg) != sig:
            fail(f"{e['kind']}: re-signing differs")
        tampered = bytearray(msg)
        tampered[-1] ^= 1
        if verify(author, sig, bytes(tampered)):
            fail(f"{e['kind']}: tampered message verified")
        if h(b).hex() != e["id"]:
            fail(f"{e['kind']}: id is not BLAKE2b-256 of the bytes")
        check_payload(e, payload, chain)
        checked += 1
    if {13, 50, 60} - {e["kindCode"] for e in doc["events"]}:
        fail("vectors lack an unjail, evidence or opinion event")
    check_genesis(bytes.fromhex(doc["genesis"]), chain)
    if h(bytes.fromhex(doc["genesis"])).hex() != doc["genesisHash"]:
        fail("genesis hash")
    blk = doc["block"]
    header = bytes.fromhex(blk["header"])
    if h(header).hex() != blk["blockHash"]:
        fail("block hash")
    ids = [bytes.fromhex(i) for i in blk["eventIDs"]]
    if merkle(ids).hex() != blk["eventsRoot"]:
        fail("events root")
    # Header: u16 version | 32 chain | u64 height | 32 parent | u64 view | u64 ts | 32 proposer | u32 count | 32 root | 32 state root | u16 meme len | meme
    height, = struct.unpack(">Q", header[34:42])
    parent = header[42:74]
    view, = struct.unpack(">Q", header[74:82])
    proposer = header[90:122]
    if header[2:34] != chain or parent.hex() != doc["genesisHash"] or header[126:158].hex() != blk["eventsRoot"]:
        fail("header fields")
    if header[158:190].hex() != doc["genesisStateRoot"]:
        fail("header parent state root")
    check_flat_genesis_root(bytes.fromhex(doc["genesis"]), doc["genesisStateRoot"], "version 2 genesis")
    g3 = bytes.fromhex(doc["economyGenesis"])
    if g3[0:2] != b"\x00\x03" or g3[2:34] != chain:
        fail("economy genesis: version 3 of this chain")
    check_flat_genesis_root(g3, doc["economyGenesisStateRoot"], "version 3 genesis")
    msg = domain("CHAOSLEDGER/COMMIT", 1, chain) + struct.pack(">QQ", height, view) + h(header)
    if msg.hex() != blk["commitMessage"]:
        fail("commit message")
    cert = bytes.fromhex(blk["certificate"])
    # Certificate: u16 version | u64 height | u64 view | 32 block hash | u16 n | n x (32 key | 64 sig)
    n, = struct.unpack(">H", cert[50:52])
    for i in range(n):
        key = cert[52 + 96 * i: 84 + 96 * i]
        s = cert[84 + 96 * i: 148 + 96 * i]
        if key != proposer or not verify(key, s, msg):
            fail("certificate vote")
    check_state_tree(doc["stateTree"], chain, doc)
    check_quorum(doc["quorum"], chain)
    check_lmdb(doc["lmdb"], doc, chain)
    nb, ne = check_bundle(doc["bundle"], chain)
    print(f"ok: {checked} events (evidence votes included), genesis, block header, events root and certificate verified; "
          f"the state roots of a version 2 and a version 3 genesis derived from their bytes; "
          f"state tree: {len(doc['stateTree']['leaves'])} leaves (also derived from the genesis, §6.1), root, inclusion and exclusion proofs, power hash, event path, stream entry, genesis snapshot, 4 sync chunks; "
          f"a {len(doc['quorum']['powers'])}-validator certificate (quorum and not); {len(doc['lmdb'])} LMDB records; "
          f"an audit bundle from a snapshot ({nb} blocks, {ne} events, its power change and checkpoint certificates)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "schemas/vectors.json")
