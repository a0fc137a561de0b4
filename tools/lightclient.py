#!/usr/bin/env python3
"""A ChaosLedger light client written from schemas/ alone (FORMAT.md §3, §4, §7 and §14):
PyNaCl (libsodium) for Ed25519 and hashlib for BLAKE2b-256. It trusts a genesis hash and
nothing the node says: it follows the validators' power from the genesis through the
headers at which it changes (each certified by the power it already trusts), then checks
an entity's state proof or an event's path against a certified header.

    lightclient.py --node URL [--genesis-hash H] account KEY|KEYFILE
    lightclient.py --node URL [--genesis-hash H] entity KIND ID      # KIND: account, validator, agent,
                                                                     # alliance, job, reputation, meme, proposal
    lightclient.py --node URL [--genesis-hash H] event ID
    lightclient.py --node URL [--genesis-hash H] stream KIND ID      # KIND: account, agent, alliance, job
    lightclient.py --node URL [--genesis-hash H] checkpoints              # the quorum-signed state roots
    lightclient.py --node URL [--genesis-hash H] snapshot                 # state sync's checks (§15)
    lightclient.py --node URL [--genesis-hash H] check --agent KEY --validator KEY

`stream` reads every event of an entity's stream up to a proven height and checks it got
them all, in order, none left out (§7.3). `checkpoints` checks the certificates of stable
checkpoints the node stored, each under the power that signs it (§14.3). `snapshot` checks
what a state-syncing node would: the offered checkpoint's certificate, then every chunk of
the state against the root it signs (§15). `check` (run in CI) verifies five entity kinds,
an event, a stream, the checkpoint certificates and the state-sync snapshot, then
tampers with what the node sent and requires each tampering
to be refused with its reason. Without
--genesis-hash the client trusts the genesis the node serves (and says so). Exit 0 when
everything verified, 1 when a proof was refused, 2 on a usage or network error.
"""
import argparse
import hashlib
import json
import os
import struct
import sys
import urllib.request

try:
    from nacl.signing import VerifyKey
    from nacl.exceptions import BadSignatureError
except ImportError:  # pragma: no cover
    sys.exit("lightclient.py needs PyNaCl: python3 -m pip install pynacl (tools/setup.sh installs it)")

ZERO = bytes(32)
KINDS = {"chain": 1, "power": 2, "account": 3, "validator": 4, "delegation": 5, "unbondings": 6, "agent": 7,
         "alliance": 8, "slash": 9, "offence": 10, "opinions": 11, "economy": 12, "reward": 13, "commission": 14,
         "delegator-slash": 15, "job": 16, "reputation": 17, "meme": 18, "influence": 19, "proposal": 20,
         "stream": 21}
STREAM_TAGS = {"account": 1, "agent": 2, "alliance": 3, "job": 4}
ROUTES = {"account": "accounts", "validator": "validators", "agent": "agents", "alliance": "alliances",
          "job": "jobs", "reputation": "reputation", "meme": "memes", "proposal": "proposals"}


class Refused(Exception):
    """A proof, header or certificate the client does not accept; the message says why."""


def H(*parts):
    return hashlib.blake2b(b"".join(parts), digest_size=32).digest()


class Reader:
    def __init__(self, b, what):
        self.b, self.i, self.what = b, 0, what

    def take(self, n):
        if self.i + n > len(self.b):
            raise Refused(f"malformed {self.what}: truncated")
        out = self.b[self.i:self.i + n]
        self.i += n
        return out

    def u8(self): return self.take(1)[0]
    def u16(self): return struct.unpack(">H", self.take(2))[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def u64(self): return struct.unpack(">Q", self.take(8))[0]
    def b32(self): return self.take(32)
    def blob16(self): return self.take(self.u16())
    def blob32(self): return self.take(self.u32())

    def end(self):
        if self.i != len(self.b):
            raise Refused(f"malformed {self.what}: {len(self.b) - self.i} trailing bytes")


# --- FORMAT.md §3: the genesis, for the chain id and the first power -------------------

def parse_genesis(b):
    r = Reader(b, "genesis")
    version = r.u16()
    chain = r.b32()
    r.u64()  # timestamp
    params = r.take(68 if version >= 2 else 56)
    min_stake = struct.unpack(">Q", params[8:16])[0]
    power = {}
    for _ in range(r.u32()):
        key = r.b32(); r.blob16(); r.blob16(); stake = r.u64()
        if stake >= min_stake:
            power[key] = stake
    if version < 4:
        raise Refused("this chain commits its state flat (genesis before version 4): it serves no proofs")
    for _ in range(r.u32()):
        r.b32(); r.u64()  # allocations
    rules = r.u16()
    r.take(68)  # economy parameters
    if r.u8() != 2:
        raise Refused("this chain commits its state flat (state commitment 1): it serves no proofs")
    if rules >= 3:
        r.take(64)  # the trust parameters of rule version 3
    return chain, power


# --- FORMAT.md §4: headers and commit certificates --------------------------------------

def parse_header(b):
    r = Reader(b, "header")
    h = {"version": r.u16()}
    if h["version"] not in (1, 2):
        raise Refused(f"malformed header: version {h['version']}")
    h["chain"] = r.b32(); h["height"] = r.u64(); h["parent"] = r.b32(); h["view"] = r.u64(); h["time"] = r.u64()
    h["proposer"] = r.b32(); h["count"] = r.u32(); h["events_root"] = r.b32(); h["parent_state_root"] = r.b32()
    if h["version"] == 2:
        h["state_root"] = r.b32(); h["next_power_hash"] = r.b32()
    r.blob16()
    r.end()
    h["hash"] = H(b)
    return h


def parse_certificate(b):
    r = Reader(b, "certificate")
    if r.u16() != 1:
        raise Refused("malformed certificate: unknown version")
    c = {"height": r.u64(), "view": r.u64(), "hash": r.b32(), "votes": parse_votes(r, "certificate")}
    r.end()
    return c


def parse_votes(r, what):
    """u16 n | n × (b32 key, b64 signature), keys strictly increasing (§4.2, §10)."""
    votes, last = [], None
    for _ in range(r.u16()):
        key, sig = r.b32(), r.take(64)
        if last is not None and not last < key:
            raise Refused(f"malformed {what}: signers not strictly increasing")
        last = key
        votes.append((key, sig))
    return votes


def parse_checkpoint(b):
    """A checkpoint certificate (FORMAT.md §10): u64 height | b32 block hash | b32 state root | u16 n | n × (b32 key, b64 signature)."""
    r = Reader(b, "checkpoint certificate")
    c = {"height": r.u64(), "hash": r.b32(), "root": r.b32(), "votes": parse_votes(r, "checkpoint certificate")}
    r.end()
    return c


def power_hash(power):
    body = b"".join(k + struct.pack(">Q", power[k]) for k in sorted(power))
    return H(b"CHAOSLEDGER/POWER\0", struct.pack(">I", len(power)), body)


class LightClient:
    def __init__(self, genesis_bytes, genesis_hash=None):
        if genesis_hash is not None and H(genesis_bytes) != genesis_hash:
            raise Refused(f"the genesis bytes hash to {H(genesis_bytes).hex()}, not the trusted {genesis_hash.hex()}")
        self.chain, self.power = parse_genesis(genesis_bytes)
        self.trusted_height = 0

    def certified(self, header_bytes, cert_bytes):
        """The header, once more than two thirds of the trusted power signed it."""
        h, c = parse_header(header_bytes), parse_certificate(cert_bytes)
        if h["chain"] != self.chain:
            raise Refused("the header is from another chain")
        if h["height"] <= self.trusted_height:
            raise Refused(f"block {h['height']} is not after the trusted height {self.trusted_height}")
        if c["height"] != h["height"] or c["hash"] != h["hash"]:
            raise Refused(f"the certificate does not sign block {h['height']}'s header")
        msg = b"CHAOSLEDGER/COMMIT\0" + struct.pack(">H", 1) + self.chain + struct.pack(">QQ", c["height"], c["view"]) + c["hash"]
        self.quorum(c["votes"], msg)
        return h

    def quorum(self, votes, msg):
        """Every signer in the trusted power, more than two thirds of it, every vote verifying `msg`."""
        total = sum(self.power.values())
        signed = 0
        for key, _ in votes:
            if key not in self.power:
                raise Refused(f"certificate signer {key.hex()[:12]} holds no power in the trusted set (another epoch's set?)")
            signed += self.power[key]
        # The cheap power sum first, the signatures last (CometBFT's order).
        if total == 0 or 3 * signed <= 2 * total:
            raise Refused(f"the certificate carries {signed} of {total} power: not more than two thirds")
        for key, sig in votes:
            try:
                VerifyKey(key).verify(msg, sig)
            except BadSignatureError:
                raise Refused(f"signer {key.hex()[:12]}'s signature does not verify")

    def verify_checkpoint(self, cert_bytes):
        """A stable checkpoint (§14.3): signed by the power that certifies the block after it,
        which is the power trusted once the power changes up to its height are adopted."""
        c = parse_checkpoint(cert_bytes)
        if c["height"] < self.trusted_height:
            raise Refused(f"checkpoint {c['height']} is below the trusted height {self.trusted_height}")
        msg = (b"CHAOSLEDGER/CHECKPOINT\0" + struct.pack(">H", 1) + self.chain + struct.pack(">Q", c["height"])
               + c["hash"] + c["root"])
        self.quorum(c["votes"], msg)
        return c

    def adopt(self, header_bytes, cert_bytes, power):
        h = self.certified(header_bytes, cert_bytes)
        if h["version"] != 2:
            raise Refused(f"the header of block {h['height']} is not version 2")
        if power_hash(power) != h["next_power_hash"]:
            raise Refused(f"the power list does not hash to block {h['height']}'s next power hash")
        self.power, self.trusted_height = power, h["height"]

    # --- FORMAT.md §14.1: state proofs ---------------------------------------------------

    def verify_state(self, proof_bytes, header_bytes, cert_bytes, kind=None, ident=None):
        h = self.certified(header_bytes, cert_bytes)
        if h["version"] != 2:
            raise Refused(f"the header of block {h['height']} is not version 2: it commits no state root")
        r = Reader(proof_bytes, "state proof")
        if r.u16() != 1:
            raise Refused("malformed state proof: unknown version")
        k, i, height = r.u8(), r.blob16(), r.u64()
        if (kind is not None and k != kind) or (ident is not None and i != ident):
            raise Refused("the proof is for another entity than the one asked for")
        if height != h["height"]:
            raise Refused(f"the proof is for height {height} but the header is block {h['height']}")
        key = H(b"CHAOSLEDGER/STATE-KEY\0", bytes([k]), i)
        t = r.u8()
        value = None
        if t == 1:
            value = r.blob32()
            cur = H(b"CHAOSLEDGER/STATE-LEAF\0", key, H(b"CHAOSLEDGER/STATE-VALUE\0", value))
        elif t == 2:
            cur = ZERO
        elif t == 3:
            other, vh = r.b32(), r.b32()
            cur = H(b"CHAOSLEDGER/STATE-LEAF\0", other, vh)
        else:
            raise Refused("malformed state proof: unknown type")
        n = r.u16()
        if n > 256:
            raise Refused("malformed state proof: more than 256 siblings")
        siblings = [r.b32() for _ in range(n)]
        r.end()
        if t == 3 and (other == key or common_prefix(key, other) < n):
            raise Refused("the proof does not lead to the header's root: the other leaf cannot stand in the key's place")
        for j, s in enumerate(siblings):
            d = n - 1 - j
            bit = (key[d // 8] >> (7 - d % 8)) & 1
            cur = H(b"CHAOSLEDGER/STATE-NODE\0", s, cur) if bit else H(b"CHAOSLEDGER/STATE-NODE\0", cur, s)
        if cur != h["state_root"]:
            raise Refused(f"the proof does not lead to the header's root: {KIND_NAMES.get(k, k)}/{i.hex()[:12]} "
                          f"against state root {h['state_root'].hex()[:12]}")
        return value

    # --- FORMAT.md §14.2: event paths ----------------------------------------------------

    def verify_event(self, event_id, path_bytes, header_bytes, cert_bytes):
        h = self.certified(header_bytes, cert_bytes)
        r = Reader(path_bytes, "event path")
        index, count = r.u32(), r.u32()
        path = [r.b32() for _ in range(r.u16())]
        r.end()
        if count != h["count"]:
            raise Refused(f"the path counts {count} events, the header {h['count']}")
        if index >= count:
            raise Refused("the event's place is past the block's events")
        fn, sn, cur = index, count - 1, H(b"\x00", event_id)
        for p in path:  # RFC 9162 §2.1.3.2
            if sn == 0:
                raise Refused("the path is longer than the block's tree")
            if fn & 1 or fn == sn:
                cur = H(b"\x01", p, cur)
                while not fn & 1 and fn != 0:
                    fn >>= 1; sn >>= 1
            else:
                cur = H(b"\x01", cur, p)
            fn >>= 1; sn >>= 1
        if sn != 0 or cur != h["events_root"]:
            raise Refused(f"the path does not lead to block {h['height']}'s events root")


KIND_NAMES = {v: k for k, v in KINDS.items()}
ID_BYTES = {1: 0, 2: 0, 12: 0, 5: 64, 15: 64, 10: 49, 21: 33}  # FORMAT.md §7.2; others 32


def tree_root(leaves, depth):
    """§7.2: the subtree at `depth` over (key, value hash) pairs sharing `depth` bits."""
    if not leaves:
        return ZERO
    if len(leaves) == 1:
        return H(b"CHAOSLEDGER/STATE-LEAF\0", *leaves[0])
    bit = lambda k: (k[depth // 8] >> (7 - depth % 8)) & 1
    return H(b"CHAOSLEDGER/STATE-NODE\0", tree_root([x for x in leaves if not bit(x[0])], depth + 1),
             tree_root([x for x in leaves if bit(x[0])], depth + 1))


def verify_chunk(b, height, depth, index, root):
    """A state-sync chunk (FORMAT.md §15.2) against the certified root of `height`: its
    entries, each key and value hash computed here, with its siblings must lead to the
    root. Returns the entries [(kind, id, value)]."""
    r = Reader(b, "sync chunk")
    if r.u16() != 1:
        raise Refused("malformed sync chunk: unknown version")
    h, d, i = r.u64(), r.u8(), r.u32()
    if (h, d, i) != (height, depth, index):
        raise Refused(f"the chunk is {i} of depth {d} at {h}, not {index} of depth {depth} at {height}")
    entries = []
    for _ in range(r.u32()):
        kind = r.u8()
        entries.append((kind, r.take(ID_BYTES.get(kind, 32)), r.blob32()))
    siblings = []
    for _ in range(depth):
        tag = r.u8()
        siblings.append((tag, r.take({0: 0, 1: 64, 2: 32}.get(tag, 0))))
    r.end()
    leaves = [(H(b"CHAOSLEDGER/STATE-KEY\0", bytes([k]), ident), H(b"CHAOSLEDGER/STATE-VALUE\0", v)) for k, ident, v in entries]
    keys = [k for k, _ in leaves]
    if keys != sorted(set(keys)) or (depth and any(int.from_bytes(k, "big") >> (256 - depth) != index for k in keys)):
        raise Refused("the chunk's keys are not increasing or lie outside its prefix")
    cur, count = tree_root(leaves, depth), min(len(leaves), 2)
    for j in range(depth - 1, -1, -1):
        tag, body = siblings[j]
        if tag not in (0, 1, 2):
            raise Refused("malformed sync chunk: unknown sibling")
        sib = ZERO if tag == 0 else H(b"CHAOSLEDGER/STATE-LEAF\0", body[:32], body[32:]) if tag == 1 else body
        n = tag  # 0 empty, 1 a leaf, 2 two or more
        if (count, n) == (0, 1):
            cur = sib
        elif (count, n) not in ((0, 0), (1, 0)):
            cur = H(b"CHAOSLEDGER/STATE-NODE\0", sib, cur) if (index >> (depth - 1 - j)) & 1 else H(b"CHAOSLEDGER/STATE-NODE\0", cur, sib)
        count = min(count + n, 2)
    if cur != root:
        raise Refused(f"chunk {index} of depth {depth} does not lead to the certified state root {root.hex()[:12]}")
    return entries


def common_prefix(a, b):
    for i in range(32):
        x = a[i] ^ b[i]
        if x:
            return i * 8 + (8 - x.bit_length())
    return 256


# --- Talking to a node ------------------------------------------------------------------

def get(node, path):
    try:
        with urllib.request.urlopen(node.rstrip("/") + path, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def connect(node, genesis_hash):
    g = get(node, "/v1/genesis")
    trusted = bytes.fromhex(genesis_hash) if genesis_hash else None
    if trusted is None:
        print(f"trusting the genesis the node serves: {g['hash']} (pass --genesis-hash to check it)")
    return LightClient(bytes.fromhex(g["bytes"]), trusted)


def follow(lc, node, below):
    """Adopts every power change at a height below `below`, walking from the genesis."""
    frm = 1
    while True:
        page = get(node, f"/v1/light/powers?from={frm}&limit=100")
        for c in page["powers"]:
            if c["height"] >= below:
                return
            power = {bytes.fromhex(p["key"]): p["power"] for p in c["power"]}
            lc.adopt(bytes.fromhex(c["header"]), bytes.fromhex(c["certificate"]), power)
            print(f"  power changes at block {c['height']}: {len(power)} validators, {sum(power.values())} power")
        if not page["powers"] or page["next"] > page["head"]:
            return
        frm = page["next"]


def power_changes(node):
    """Every power change the node serves, ascending (§14.3)."""
    out, frm = [], 1
    while True:
        page = get(node, f"/v1/light/powers?from={frm}&limit=100")
        out += page["powers"]
        if not page["powers"] or page["next"] > page["head"]:
            return out
        frm = page["next"]


def checkpoints(lc, node, limit=100):
    """The node's stored checkpoint certificates (§14.3), each checked under the power that
    signs it: the power changes up to its height are adopted first. Returns the verified ones."""
    changes = power_changes(node)
    out = []
    for c in get(node, f"/v1/light/checkpoints?from=1&limit={limit}")["checkpoints"]:
        while changes and changes[0]["height"] <= c["height"]:
            p = changes.pop(0)
            if p["height"] > lc.trusted_height:
                lc.adopt(bytes.fromhex(p["header"]), bytes.fromhex(p["certificate"]),
                         {bytes.fromhex(e["key"]): e["power"] for e in p["power"]})
        v = lc.verify_checkpoint(bytes.fromhex(c["certificate"]))
        if v["root"].hex() != c["stateRoot"] or v["height"] != c["height"]:
            raise Refused(f"checkpoint {c['height']}: the node's summary differs from the certificate it served")
        print(f"ok: checkpoint {v['height']}: state root {v['root'].hex()} signed by {len(v['votes'])} of the trusted validators")
        out.append((c, v))
    return out


def get_bytes(node, path):
    with urllib.request.urlopen(node.rstrip("/") + path, timeout=30) as r:
        return r.read(16 << 20)


def snapshot(lc, node):
    """State sync's checks (FORMAT.md §15): the offer's checkpoint certificate under the
    power walked from the genesis, then every chunk against the root it signs. Returns
    (offer, verified checkpoint, chunks)."""
    offer = get(node, "/v1/sync/snapshot")
    if "height" not in offer:
        raise Refused(f"the node offers no snapshot: {offer}")
    follow(lc, node, offer["height"] + 1)
    v = lc.verify_checkpoint(bytes.fromhex(offer["certificate"]))
    if v["height"] != offer["height"] or v["root"].hex() != offer["stateRoot"]:
        raise Refused("the offer's summary differs from the certificate it carries")
    chunks, leaves = [], 0
    for i in range(1 << offer["depth"]):
        c = get_bytes(node, f"/v1/sync/chunks?height={offer['height']}&depth={offer['depth']}&index={i}")
        leaves += len(verify_chunk(c, offer["height"], offer["depth"], i, v["root"]))
        chunks.append(c)
    if leaves != offer["leaves"]:
        raise Refused(f"the chunks hold {leaves} leaves, the offer says {offer['leaves']}")
    print(f"ok: the state at checkpoint {offer['height']}: {leaves} leaves in {len(chunks)} chunks, each proven "
          f"against the root {v['root'].hex()[:16]}… that {len(v['votes'])} trusted validators signed")
    return offer, v, chunks


def prove_entity(lc, node, kind, ident, height=None):
    q = "?proof=true" + (f"&height={height}" if height else "")
    d = get(node, f"/v1/{ROUTES[kind]}/{ident}{q}")
    if "proof" not in d:
        raise Refused(f"the node sent no proof: {d}")
    value = lc.verify_state(bytes.fromhex(d["proof"]), bytes.fromhex(d["header"]), bytes.fromhex(d["certificate"]),
                            KINDS[kind], bytes.fromhex(ident))
    return d, value


def stream_head(ids):
    """FORMAT.md §7.3: the count and hash chain of a stream of these event ids."""
    h = ZERO
    for i in ids:
        h = H(b"CHAOSLEDGER/STREAM\0", h, i)
    return len(ids), h


def prove_stream(lc, node, kind, ident):
    """The stream's proven count and head, and the ids the node lists up to that height."""
    d = get(node, f"/v1/streams/{kind}/{ident}?proof=true")
    if "proof" not in d:
        raise Refused(f"the node sent no proof: {d}")
    leaf_id = bytes([STREAM_TAGS[kind]]) + bytes.fromhex(ident)
    value = lc.verify_state(bytes.fromhex(d["proof"]), bytes.fromhex(d["header"]), bytes.fromhex(d["certificate"]),
                            KINDS["stream"], leaf_id)
    count, head = 0, ZERO
    if value is not None:
        r = Reader(value, "stream leaf")
        r.u8(); r.b32(); count, head = r.u64(), r.b32()
        r.end()
    ids, after = [], None
    while True:
        page = get(node, f"/v1/streams/{kind}/{ident}?limit=500" + (f"&after={after}" if after is not None else ""))
        events = [e for e in page["events"] if e["sequence"] < d["endSequence"]]
        ids += [bytes.fromhex(e["id"]) for e in events]
        if len(events) < len(page["events"]) or page["next"] is None:
            break
        after = page["next"]
    return d, (count, head), ids


def check_stream(proven, ids, height):
    count, head = proven
    mine = stream_head(ids)
    if mine[0] != count:
        raise Refused(f"the stream's events are not the proven ones: got {len(ids)}, the state at height {height} counts {count}")
    if mine[1] != head:
        raise Refused("the stream's events are not the proven ones: their hash chain is not the proven head "
                      f"{head.hex()[:12]}: an event is missing, foreign, altered or out of order")


def stream(args, lc, kind, ident):
    head = get(args.node, "/v1/status")["height"]
    follow(lc, args.node, head + 1)
    d, proven, ids = prove_stream(lc, args.node, kind, ident)
    check_stream(proven, ids, d["height"])
    print(f"ok: {kind} stream {ident[:16]}… at height {d['height']}: all {len(ids)} event(s), in order "
          f"(hash chain {proven[1].hex()[:12]} proven against a header {len(lc.power)} validator(s) certified)")
    return d, proven, ids


def describe(kind, value):
    if value is None:
        return "absent"
    if kind == "account":
        balance, nonce = struct.unpack(">QQ", value[32:48])
        return f"balance {balance}, nonce {nonce}"
    return f"{len(value)} bytes"


def entity(args, lc, kind, ident):
    head = get(args.node, "/v1/status")["height"]
    follow(lc, args.node, head + 1)
    d, value = prove_entity(lc, args.node, kind, ident)
    print(f"ok: {kind} {ident[:16]}… at height {d['height']}: {describe(kind, value)} "
          f"(proof checked against the state root of a header {len(lc.power)} validator(s) certified)")


def event(args, lc, ident):
    d = get(args.node, f"/v1/events/{ident}?proof=true")
    p = d.get("proof")
    if p is None:
        raise Refused(f"the node sent no proof: {d}")
    follow(lc, args.node, p["height"])
    lc.verify_event(bytes.fromhex(ident), bytes.fromhex(p["path"]), bytes.fromhex(p["header"]), bytes.fromhex(p["certificate"]))
    print(f"ok: event {ident[:16]}… is event {p['index']} of {p['count']} in block {p['height']}")


def flip(b, i):
    b = bytearray(b)
    b[i] ^= 1
    return bytes(b)


def check(args, lc):
    """CI: five entity kinds and an event verify; five tamperings are refused."""
    head = get(args.node, "/v1/status")["height"]
    follow(lc, args.node, head + 1)
    first = lambda route: (get(args.node, f"/v1/{route}?limit=1").get(route) or [{}])[0]
    alliance = first("alliances").get("id")
    meme = first("memes").get("id")
    targets = [("account", args.agent), ("validator", args.validator), ("agent", args.agent),
               ("alliance", alliance), ("meme", meme), ("account", "ab" * 32)]
    if None in (alliance, meme):
        raise Refused("the node has no alliance or meme to prove (run the example agent first)")
    kinds = set()
    for kind, ident in targets:
        d, value = prove_entity(lc, args.node, kind, ident)
        kinds.add(kind)
        print(f"ok: {kind} {ident[:16]}… {describe(kind, value)}")
    sd, proven, ids = stream(args, lc, "account", args.agent)
    if len(ids) < 2:
        raise Refused("the agent's stream has fewer than two events (run the example agent first)")
    ev = ids[-1].hex()
    event(args, lc, ev)

    d, _ = prove_entity(lc, args.node, "account", args.agent)
    proof, header, cert = bytes.fromhex(d["proof"]), bytes.fromhex(d["header"]), bytes.fromhex(d["certificate"])
    evp = get(args.node, f"/v1/events/{ev}?proof=true")["proof"]
    other = LightClient.__new__(LightClient)
    other.chain, other.power, other.trusted_height = H(b"another chain"), lc.power, 0
    ident = bytes.fromhex(args.agent)
    value_at = proof.index(ident, 3 + 2 + 32 + 8) + 32 + 7  # the last byte of the account's balance
    genesis = bytes.fromhex(get(args.node, "/v1/genesis")["bytes"])
    tamperings = [
        ("tampered bytes (one bit of the balance)",
         lambda: lc.verify_state(flip(proof, value_at), header, cert, KINDS["account"], ident), "does not lead"),
        ("a wrong path (one bit of the last sibling)",
         lambda: lc.verify_state(flip(proof, len(proof) - 1), header, cert, KINDS["account"], ident), "does not lead"),
        ("a certificate without a quorum (its votes removed)",
         lambda: lc.verify_state(proof, header, cert[:50] + b"\x00\x00", KINDS["account"], ident), "not more than two thirds"),
        ("another epoch's set (a power list the header does not commit)",
         lambda: LightClient(genesis).adopt(header, cert, {bytes(32): 1}), "does not hash"),
        ("a header from another chain",
         lambda: other.verify_state(proof, header, cert), "another chain"),
        ("a stream with an event left out",
         lambda: check_stream(proven, ids[:-2] + ids[-1:], sd["height"]), "not the proven"),
        ("a stream with two events swapped",
         lambda: check_stream(proven, ids[1:2] + ids[:1] + ids[2:], sd["height"]), "hash chain"),
        ("an event path for another event",
         lambda: lc.verify_event(H(b"not this event"), bytes.fromhex(evp["path"]), bytes.fromhex(evp["header"]),
                                 bytes.fromhex(evp["certificate"])), "does not lead"),
    ]
    # Checkpoint certificates (a quorum's signature over a state root), on a fresh client
    # that walks the power changes itself.
    walker = LightClient(genesis, H(genesis))
    certified = checkpoints(walker, args.node)
    if certified:
        # The newest: at or above every power change the walker adopted.
        c = bytes.fromhex(certified[-1][0]["certificate"])
        tamperings.append(("a checkpoint certificate with its state root changed",
                           lambda: walker.verify_checkpoint(flip(c, 8 + 32 + 31)), "does not verify"))
    # State sync (§15): the offer and every chunk, on another fresh client; a chunk with one
    # bit of its last entry or sibling flipped is refused.
    offer, sv, chunks = snapshot(LightClient(genesis, H(genesis)), args.node)
    tamperings.append(("a state-sync chunk with one bit flipped",
                       lambda: verify_chunk(flip(chunks[0], len(chunks[0]) - 1), offer["height"], offer["depth"], 0, sv["root"]),
                       "does not lead"))
    for name, attempt, reason in tamperings:
        try:
            attempt()
        except Refused as e:
            if reason not in str(e):
                raise Refused(f"{name}: refused for the wrong reason: {e}")
            print(f"refused, as it must be: {name}: {e}")
            continue
        raise Refused(f"{name} was accepted")
    print(f"ok: {len(kinds)} entity kinds, an event and a stream verified; {len(certified)} checkpoint certificates verified; "
          f"a state-sync snapshot of {offer['leaves']} leaves verified; "
          f"{len(tamperings)} tamperings refused")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default="http://127.0.0.1:8100")
    ap.add_argument("--genesis-hash", help="the genesis hash to trust (hex); default: the node's")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("account"); a.add_argument("key", help="a public key (hex) or a key file")
    e = sub.add_parser("entity"); e.add_argument("kind", choices=sorted(ROUTES)); e.add_argument("id")
    v = sub.add_parser("event"); v.add_argument("id")
    s = sub.add_parser("stream"); s.add_argument("kind", choices=sorted(STREAM_TAGS)); s.add_argument("id")
    sub.add_parser("checkpoints")
    sub.add_parser("snapshot")
    c = sub.add_parser("check"); c.add_argument("--agent", required=True); c.add_argument("--validator", required=True)
    args = ap.parse_args()
    try:
        lc = connect(args.node, args.genesis_hash)
        if args.cmd == "account":
            key = args.key
            if os.path.isfile(key):  # a key file (FORMAT.md §8): its public key
                key = json.load(open(key))["publicKey"]
            entity(args, lc, "account", key)
        elif args.cmd == "entity":
            entity(args, lc, args.kind, args.id)
        elif args.cmd == "event":
            event(args, lc, args.id)
        elif args.cmd == "stream":
            stream(args, lc, args.kind, args.id)
        elif args.cmd == "checkpoints":
            n = len(checkpoints(lc, args.node))
            print(f"ok: {n} checkpoint certificates verified" if n else "the node has stored no checkpoint certificate yet")
        elif args.cmd == "snapshot":
            snapshot(lc, args.node)
        else:
            check(args, lc)
    except Refused as e:
        print(f"REFUSED: {e}")
        sys.exit(1)
    except (OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
