#!/usr/bin/env python3
"""A ChaosLedger agent in Python, written from schemas/ alone.

It uses PyNaCl (libsodium's Python binding) for Ed25519 and key-file decryption,
hashlib's BLAKE2b, and otherwise only the standard library; it imports no project code.
What it follows:

  schemas/FORMAT.md  §1 conventions (big-endian, str16, list16, limits, chain id)
                     §2 event envelope, §2.1 signing rule, §2.2 id rule
                     §3 payloads and the rules that refuse events
                     §8 key files (plain and argon2id + secretbox encrypted)
  schemas/openapi.yaml  GET /v1/status, /v1/fees, /v1/economy, /v1/accounts/{key}, /v1/agents/{key},
                     /v1/validators, /v1/agents, /v1/alliances/{id}, /v1/events/{id},
                     /v1/streams/agent/{key};
                     POST /v1/events (one raw envelope and a JSON batch, `wait`), the
                     receipt codes and the error body.

What it does, against a running node:
  1. loads its key file (or creates one, mode 0600, if the file does not exist);
  2. reads the chain id (/v1/status), the fee estimate (/v1/fees) and its account's
     nonce and balance (/v1/accounts/{key}) — a key must be funded first, by a genesis
     allocation or a transfer: `chaosledger devnet --prepare-only` writes funded
     keys/agent-N.key files;
  3. signs agent.register (agent.update when already registered), a transfer and, when
     another agent or validator exists to offer it to, an alliance.propose;
  4. submits the first as one raw envelope and the others as a JSON batch, with `wait`,
     and polls the event status route until each is committed;
  5. submits a forged signature, a stale nonce and a replayed event and checks each is
     refused with its documented code;
  6. reads back the event statuses and payloads, its account, its agent profile, the
     recipient's account and the alliance, and checks every value it can predict;
  7. with --peer-key, sends a second agent a message sealed to its key (message.send),
     then, as that agent, finds it in its stream, opens it and checks who sent it.
It exits 0 when every check passed, 1 on a failed check, 2 when it cannot start (no
node, no account, a bad key file), each time with a message saying what went wrong.

  python3 tools/example_agent.py --node http://127.0.0.1:8100 --key data/devnet/keys/agent-0.key
  python3 tools/example_agent.py --self-test schemas/vectors.json   # codec check, no node

Adding an event kind: one line in KINDS (its code and fields, with the field names the
API's Event JSON uses for its payload), using the field types below.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import nacl.exceptions
    import nacl.public
    import nacl.pwhash
    import nacl.secret
    import nacl.signing
except ImportError:
    sys.exit("example_agent: PyNaCl is missing: run tools/setup.sh (or python3 -m pip install pynacl)")


class Failure(Exception):
    """A check that did not hold (exit 1)."""


class Unusable(Exception):
    """The agent cannot start: no node, no account, a bad key file (exit 2)."""


def log(msg):
    print(f"example_agent: {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# Field types (FORMAT.md §1). Each is (encode(value) -> bytes, decode(reader) -> value);
# values are what the HTTP API's Event JSON shows: integers, strings, hex for keys.


class Reader:
    def __init__(self, b, what):
        self.b, self.i, self.what = b, 0, what

    def take(self, n):
        if self.i + n > len(self.b):
            raise ValueError(f"{self.what}: truncated")
        self.i += n
        return self.b[self.i - n:self.i]

    def end(self):
        if self.i != len(self.b):
            raise ValueError(f"{self.what}: {len(self.b) - self.i} trailing bytes")


def uint(n):
    def enc(v):
        if not isinstance(v, int) or not 0 <= v < 1 << (8 * n):
            raise ValueError(f"{v!r} is not a u{8 * n}")
        return v.to_bytes(n, "big")
    return enc, lambda r: int.from_bytes(r.take(n), "big")


def fixed(n):
    def enc(v):
        b = bytes.fromhex(v)
        if len(b) != n:
            raise ValueError(f"{v!r} is not {n} bytes of hex")
        return b
    return enc, lambda r: r.take(n).hex()


def str16(max_bytes):
    def enc(v):
        b = v.encode("utf-8")
        if len(b) > max_bytes:
            raise ValueError(f"{v[:40]!r}… is over {max_bytes} bytes")
        return len(b).to_bytes(2, "big") + b

    def dec(r):
        n = U16[1](r)
        if n > max_bytes:
            raise ValueError(f"string of {n} bytes is over {max_bytes}")
        return r.take(n).decode("utf-8")
    return enc, dec


def blob16(max_bytes):
    def enc(v):
        b = bytes.fromhex(v)
        if len(b) > max_bytes:
            raise ValueError(f"blob over {max_bytes} bytes")
        return len(b).to_bytes(2, "big") + b

    def dec(r):
        n = U16[1](r)
        if n > max_bytes:
            raise ValueError(f"blob of {n} bytes is over {max_bytes}")
        return r.take(n).hex()
    return enc, dec


def list16(item, max_count):
    def enc(vs):
        if len(vs) > max_count:
            raise ValueError(f"{len(vs)} elements, at most {max_count}")
        return len(vs).to_bytes(2, "big") + b"".join(item[0](v) for v in vs)

    def dec(r):
        n = U16[1](r)
        if n > max_count:
            raise ValueError(f"{n} elements, at most {max_count}")
        return [item[1](r) for _ in range(n)]
    return enc, dec


def enum8(names):
    codes = {v: k for k, v in names.items()}
    def dec(r):
        c = U8[1](r)
        if c not in names:
            raise ValueError(f"unknown value {c}")
        return names[c]
    return lambda v: U8[0](codes[v]), dec


U8, U16, U32, U64 = uint(1), uint(2), uint(4), uint(8)
B32, B64 = fixed(32), fixed(64)
# FORMAT.md §1 limits.
MEMO, NAME, PERSONALITY, ENDPOINT, CAPABILITY, TEXT, REASON = (
    str16(256), str16(64), str16(64), str16(256), str16(64), str16(512), str16(256))
PROFILE = [("name", NAME), ("capabilities", list16(CAPABILITY, 32)), ("personality", PERSONALITY), ("endpoint", ENDPOINT)]

# FORMAT.md §3: kind name -> (code, payload fields in order).
KINDS = {
    "transfer":             (1,  [("to", B32), ("amount", U64), ("memo", MEMO)]),
    "validator.register":   (10, [("name", NAME), ("personality", PERSONALITY)]),
    "validator.retire":     (11, []),
    "validator.rotate_key": (12, [("oldKey", B32), ("newKey", B32), ("oldKeySignature", B64), ("newKeySignature", B64)]),
    "validator.unjail":     (13, []),
    "staking.bond":         (20, [("amount", U64)]),
    "staking.unbond":       (21, [("amount", U64)]),
    "staking.delegate":     (22, [("validator", B32), ("amount", U64)]),
    "staking.undelegate":   (23, [("validator", B32), ("amount", U64)]),
    "agent.register":       (30, PROFILE),
    "agent.update":         (31, PROFILE),
    "agent.deregister":     (32, []),
    "alliance.propose":     (40, [("targets", list16(B32, 16)), ("purpose", TEXT), ("terms", TEXT), ("durationMs", U64)]),
    "alliance.accept":      (41, [("alliance", B32)]),
    "alliance.reject":      (42, [("alliance", B32)]),
    "alliance.dissolve":    (43, [("alliance", B32)]),
    "consensus.evidence":   (50, [("first", blob16(256)), ("second", blob16(256))]),
    "social.opinion":       (60, [("height", U64), ("view", U64), ("blockHash", B32),
                                  ("verdict", enum8({1: "accept", 2: "refuse"})), ("reason", REASON)]),
    # The agent economy (FORMAT.md §3, codes 14, 24, 70-111; this agent posts a meme).
    "meme.post":            (100, [("contentHash", B32), ("content", TEXT), ("tags", list16(NAME, 8))]),
    # Rule version 3 (ECONOMY.md): a heartbeat, and a message sealed to an agent's key.
    "agent.heartbeat":      (33, []),
    "message.send":         (120, [("to", B32), ("sealed", blob16(1024))]),
}
KIND_NAMES = {code: name for name, (code, _) in KINDS.items()}


def encode_payload(kind, fields):
    spec = KINDS[kind][1]
    names = [n for n, _ in spec]
    if sorted(fields) != sorted(names):
        raise ValueError(f"{kind} takes fields {names}, got {sorted(fields)}")
    out = b""
    for name, (enc, _) in spec:
        try:
            out += enc(fields[name])
        except (ValueError, TypeError, AttributeError) as e:
            raise ValueError(f"{kind}.{name}: {e}") from None
    return out


def decode_payload(kind, payload):
    r = Reader(payload, kind)
    fields = {}
    for name, (_, dec) in KINDS[kind][1]:
        try:
            fields[name] = dec(r)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{kind}.{name}: {e}") from None
    r.end()
    return fields


# ---------------------------------------------------------------------------------------
# Envelope, signature and id (FORMAT.md §2).

EVENT_BYTES_MAX, ENVELOPE_OVERHEAD = 4096, 152


def blake2b256(b):
    return hashlib.blake2b(b, digest_size=32).digest()


def chain_bytes(name):
    if not re.fullmatch(r"[a-z0-9._-]{1,32}", name):
        raise Unusable(f"chain id {name!r} is not 1-32 characters of a-z 0-9 . - _")
    return name.encode("ascii").ljust(32, b"\x00")


def domain(tag, version, chain):
    return tag.encode("ascii") + b"\x00" + version.to_bytes(2, "big") + chain


def sign_event(key, chain, kind, nonce, fee, fields):
    """The stored bytes of a signed event: the unsigned envelope, then its signature."""
    payload = encode_payload(kind, fields)
    if len(payload) > EVENT_BYTES_MAX - ENVELOPE_OVERHEAD:
        raise ValueError(f"{kind} payload of {len(payload)} bytes is over the limit")
    unsigned = (U16[0](1) + U16[0](KINDS[kind][0]) + chain + bytes(key.verify_key)
                + U64[0](nonce) + U64[0](fee) + U32[0](len(payload)) + payload)
    return unsigned + key.sign(domain("CHAOSLEDGER/EVENT", 1, chain) + unsigned).signature


def event_id(event):
    return blake2b256(event).hex()


def decode_event(b):
    """(kind, chain, author hex, nonce, fee, payload fields, signature, unsigned bytes)."""
    r = Reader(b, "envelope")
    version, code = U16[1](r), U16[1](r)
    chain, author, nonce, fee = r.take(32), r.take(32).hex(), U64[1](r), U64[1](r)
    payload = r.take(U32[1](r))
    unsigned, signature = b[:r.i], r.take(64)
    r.end()
    if version != 1 or code not in KIND_NAMES:
        raise ValueError(f"unknown version {version} or kind {code}")
    kind = KIND_NAMES[code]
    return kind, chain, author, nonce, fee, decode_payload(kind, payload), signature, unsigned


# ---------------------------------------------------------------------------------------
# Key files (FORMAT.md §8).


def load_or_create_key(path, passphrase_env):
    if not os.path.exists(path):
        key = nacl.signing.SigningKey.generate()
        doc = {"format": "chaosledger-key", "version": 1, "publicKey": bytes(key.verify_key).hex(), "seed": bytes(key).hex()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
        log(f"created key file {path} (a new key has no account until it is funded)")
        return key
    mode = os.stat(path).st_mode
    if mode & 0o077:
        raise Unusable(f"key file {path}: permissions {oct(mode & 0o777)} are too open; chmod 600")
    try:
        doc = json.load(open(path))
    except (OSError, ValueError) as e:
        raise Unusable(f"key file {path}: {e}") from None
    if doc.get("format") != "chaosledger-key" or doc.get("version") != 1:
        raise Unusable(f"key file {path}: not a chaosledger-key version 1 document")
    if "seed" in doc:
        seed = bytes.fromhex(doc["seed"])
    elif "encrypted" in doc:
        e = doc["encrypted"]
        passphrase = os.environ.get(passphrase_env)
        if passphrase is None:
            raise Unusable(f"key file {path} is encrypted: put its passphrase in ${passphrase_env}")
        if e.get("kdf") != "argon2id13":
            raise Unusable(f"key file {path}: unknown kdf {e.get('kdf')!r}")
        k = nacl.pwhash.argon2id.kdf(32, passphrase.encode(), bytes.fromhex(e["salt"]),
                                     opslimit=e["opslimit"], memlimit=e["memlimit"])
        try:
            seed = nacl.secret.SecretBox(k).decrypt(bytes.fromhex(e["ciphertext"]), bytes.fromhex(e["nonce"]))
        except nacl.exceptions.CryptoError:
            raise Unusable(f"key file {path}: wrong passphrase or damaged file") from None
    else:
        raise Unusable(f"key file {path}: neither a seed nor an encrypted seed")
    if len(seed) != 32:
        raise Unusable(f"key file {path}: the seed is not 32 bytes")
    key = nacl.signing.SigningKey(seed)
    if bytes(key.verify_key).hex() != doc.get("publicKey", "").lower():
        raise Unusable(f"key file {path}: publicKey does not match the seed")
    return key


# ---------------------------------------------------------------------------------------
# The node's HTTP API (schemas/openapi.yaml).


class Node:
    def __init__(self, url, timeout):
        self.url = url.rstrip("/")
        self.timeout = timeout
        host = urllib.parse.urlparse(self.url).hostname or ""
        # A proxy from the environment must not stand between us and a node on this machine.
        local = host in ("localhost", "::1") or host.startswith("127.")
        self.opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if local else []))

    def request(self, method, path, body=None, content_type=None):
        """(HTTP status, parsed JSON body). Retries a 429 after its Retry-After, a few times."""
        for attempt in range(5):
            req = urllib.request.Request(self.url + path, data=body, method=method)
            if content_type:
                req.add_header("Content-Type", content_type)
            try:
                with self.opener.open(req, timeout=self.timeout) as resp:
                    status, data = resp.status, resp.read()
            except urllib.error.HTTPError as e:
                status, data = e.code, e.read()
                if status == 429 and attempt < 4:
                    time.sleep(min(5.0, float(e.headers.get("Retry-After") or 1)))
                    continue
            except (urllib.error.URLError, OSError) as e:
                raise Unusable(f"cannot reach the node at {self.url}: {e}") from None
            try:
                return status, json.loads(data) if data else None
            except ValueError:
                raise Failure(f"{method} {path}: HTTP {status} with a body that is not JSON: {data[:200]!r}") from None
        raise Unusable(f"{method} {path}: still rate limited after 5 tries")

    def get(self, path, allow_404=False):
        status, body = self.request("GET", path)
        if status == 404 and allow_404:
            return None
        if status != 200:
            raise Failure(f"GET {path}: HTTP {status}: {error_text(body)}")
        return body

    def submit(self, events, wait_ms):
        """A JSON batch (one event: the raw octet-stream form). Returns (status, receipts)."""
        query = f"?wait=true&timeoutMs={wait_ms}" if wait_ms else ""
        if len(events) == 1:
            status, body = self.request("POST", "/v1/events" + query, events[0], "application/octet-stream")
        else:
            doc = json.dumps({"events": [e.hex() for e in events]}).encode()
            status, body = self.request("POST", "/v1/events" + query, doc, "application/json")
        if status not in (200, 422) or not isinstance(body, dict) or "receipts" not in body:
            raise Failure(f"POST /v1/events: HTTP {status}: {error_text(body)}")
        if len(body["receipts"]) != len(events):
            raise Failure(f"POST /v1/events: {len(body['receipts'])} receipts for {len(events)} events")
        return status, body["receipts"]


def error_text(body):
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return f"{body['error'].get('code')}: {body['error'].get('message')}"
    return repr(body)[:300]


# ---------------------------------------------------------------------------------------
# The agent.


def check(cond, what):
    if not cond:
        raise Failure(what)


def run(args):
    key = load_or_create_key(args.key, args.passphrase_env)
    me = bytes(key.verify_key).hex()
    node = Node(args.node, args.timeout)
    status = node.get("/v1/status")
    chain = chain_bytes(status["chainId"])
    fees = node.get("/v1/fees")
    unit = max(fees["minFee"], fees["suggested"])

    def fee_for(kind):
        # openapi /v1/fees: an event of kind K offers gas[K] x suggested (these events are
        # under 512 bytes, so no size gas); rule version 1 has no gas table (every kind 1).
        return fees.get("gas", {}).get(kind, 1) * unit
    fee = unit
    log(f"node {args.node}: chain {status['chainId']}, height {status['height']}, fee per gas {unit} (minimum {fees['minFee']})")

    account = node.get(f"/v1/accounts/{me}", allow_404=True)
    if account is None:
        raise Unusable(f"key {me} has no account on this chain: fund it first (a genesis allocation, as "
                       f"`chaosledger devnet --prepare-only` writes for keys/agent-N.key, or a transfer to it)")
    nonce0, balance0 = account["nonce"], account["balance"]
    log(f"account {me}: balance {balance0}, nonce {nonce0}")

    # What to send. An agent registered before (an earlier run) updates its profile instead.
    profile = {"name": args.name, "capabilities": args.capabilities.split(",") if args.capabilities else [],
               "personality": args.personality, "endpoint": args.endpoint}
    existing = node.get(f"/v1/agents/{me}", allow_404=True)
    first_kind = "agent.update" if existing and existing["active"] else "agent.register"
    recipient = args.to or bytes(nacl.signing.SigningKey.generate().verify_key).hex()
    recipient_before = (node.get(f"/v1/accounts/{recipient}", allow_404=True) or {}).get("balance", 0)
    plan = [(first_kind, profile),
            ("transfer", {"to": recipient, "amount": args.amount, "memo": "from the Python example agent"})]
    target = pick_alliance_target(node, me)
    if target:
        plan.append(("alliance.propose", {"targets": [target], "purpose": "swap memes", "terms": "share and share alike",
                                          "durationMs": 3_600_000}))
    else:
        log("no other registered agent or active validator: no alliance.propose")
    if fees.get("ruleVersion", 1) >= 2:
        text = "an agent from another language says gm"
        plan.append(("meme.post", {"contentHash": hashlib.blake2b(text.encode(), digest_size=32).hexdigest(),
                                   "content": text, "tags": ["python", "gm"]}))
    signed = [(kind, fields, sign_event(key, chain, kind, nonce0 + i + 1, fee_for(kind), fields)) for i, (kind, fields) in enumerate(plan)]

    # Submit: the first event alone as a raw envelope, the rest as one JSON batch.
    wait_ms = min(30_000, int(args.timeout * 1000))
    for batch in (signed[:1], signed[1:]):
        http, receipts = node.submit([e for _, _, e in batch], wait_ms)
        for (kind, _, e), r in zip(batch, receipts):
            log(f"submitted {kind} {event_id(e)[:16]}…: {r['status']}"
                + (f" at height {r['height']}" if r.get("height") is not None else "")
                + (f" ({r['code']}: {r['error']})" if r.get("code") else ""))
            check(r["id"] == event_id(e), f"{kind}: receipt id {r['id']} is not the event's id {event_id(e)}")
            check(r["status"] in ("accepted", "committed", "pending"), f"{kind} was refused: {r['code']}: {r['error']}")
        check(http == 200, f"HTTP {http} for a submission the node did not refuse")
    committed = {event_id(e): wait_committed(node, event_id(e), args.timeout) for _, _, e in signed}
    log(f"all {len(signed)} events committed, up to height {max(c['height'] for c in committed.values())}")

    # Bad events: each refused with its documented code (openapi Receipt.code), nothing kept.
    forged = bytearray(sign_event(key, chain, "transfer", nonce0 + len(signed) + 1, fee,
                                  {"to": recipient, "amount": 1, "memo": "forged"}))
    forged[-1] ^= 0x01
    stale = sign_event(key, chain, "transfer", nonce0 + 1, fee, {"to": recipient, "amount": 1, "memo": "stale"})
    for what, bad, code in [("a forged signature", bytes(forged), "bad_signature"),
                            ("a stale nonce", stale, "stale_nonce"),
                            ("a replayed event", signed[0][2], "duplicate")]:
        http, (r,) = node.submit([bad], 0)
        check(http == 422 and r["status"] == "rejected" and r["code"] == code,
              f"{what}: expected HTTP 422 with code {code}, got HTTP {http} {r}")
        log(f"refused as expected: {what} ({r['code']}: {r['error']})")
    for bad in (bytes(forged), stale):
        check(node.get(f"/v1/events/{event_id(bad)}", allow_404=True) is None, "a refused event is known to the node")

    # Read back and check.
    for kind, fields, e in signed:
        got = committed[event_id(e)]["event"]
        want = {"id": event_id(e), "kind": kind, "author": me, "fee": fee_for(kind), "nonce": decode_event(e)[3],
                "bytes": len(e), "signature": e[-64:].hex(), "payload": fields}
        diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        check(not diff, f"{kind} as committed differs from what was signed (got, sent): {diff}")
    # Under rule version 3 a registration also locks the agent bond (ECONOMY.md).
    bond = node.get("/v1/economy").get("trust", {}).get("agentBond", 0) if first_kind == "agent.register" else 0
    spent = sum(fee_for(k) for k, _, _ in signed) + (args.amount if recipient != me else 0) + bond
    account = wait_account(node, me, nonce0 + len(signed), args.timeout)
    check(account["balance"] == balance0 - spent,
          f"balance {account['balance']}, expected {balance0} - {spent} = {balance0 - spent} "
          f"(fees {[fee_for(k) for k, _, _ in signed]} + transfer {args.amount} + bond {bond}; did someone else pay this account meanwhile?)")
    log(f"account: nonce {account['nonce']}, balance {account['balance']} (paid {spent})")
    if recipient != me:
        got = node.get(f"/v1/accounts/{recipient}")["balance"]
        check(got >= recipient_before + args.amount, f"recipient {recipient} holds {got}, expected at least {recipient_before + args.amount}")
        log(f"recipient {recipient[:16]}… holds {got}")
    agent = node.get(f"/v1/agents/{me}")
    check(agent["active"] and agent["profile"] == profile, f"agent profile {agent}, expected {profile} and active")
    log(f"agent profile: {agent['profile']['name']} {agent['profile']['capabilities']}, active, registered at {agent['registeredAt']}")
    if target:
        aid = event_id(signed[2][2])
        alliance = node.get(f"/v1/alliances/{aid}")
        check(alliance["proposer"] == me and alliance["targets"] == [target] and alliance["purpose"] == plan[2][1]["purpose"],
              f"alliance {aid}: {alliance}")
        log(f"alliance {aid[:16]}… proposed to {target[:16]}…: {alliance['status']}")
    log(f"ok: {len(signed)} events committed and read back, 3 bad events refused")
    if args.peer_key:
        send_sealed_message(node, chain, key, me, load_or_create_key(args.peer_key, args.passphrase_env), fee_for, args.timeout)


def send_sealed_message(node, chain, key, me, peer_key, fee_for, timeout):
    """A message to a second agent (FORMAT.md §3, message.send): sealed (libsodium
    crypto_box_seal) to the X25519 form of its Ed25519 key; then, as that agent, read its
    inbox (its agent stream), open the box, and check on the log who sent it."""
    peer = bytes(peer_key.verify_key).hex()
    # Only a registered agent receives messages: register the peer first if it is not one.
    agent = node.get(f"/v1/agents/{peer}", allow_404=True)
    if not (agent and agent["active"]):
        n = node.get(f"/v1/accounts/{peer}")["nonce"]
        reg = sign_event(peer_key, chain, "agent.register", n + 1, fee_for("agent.register"),
                         {"name": "python-peer", "capabilities": ["chat"], "personality": "lawful", "endpoint": ""})
        _, (r,) = node.submit([reg], 30_000)
        check(r["status"] in ("accepted", "committed", "pending"), f"the peer's registration was refused: {r}")
        wait_committed(node, event_id(reg), timeout)
    text = f"for {peer[:8]} only: the meme budget is approved"
    box = nacl.public.SealedBox(peer_key.verify_key.to_curve25519_public_key()).encrypt(text.encode())
    nonce = node.get(f"/v1/accounts/{me}")["nonce"]
    e = sign_event(key, chain, "message.send", nonce + 1, fee_for("message.send"), {"to": peer, "sealed": box.hex()})
    eid = event_id(e)
    _, (r,) = node.submit([e], 30_000)
    check(r["status"] in ("accepted", "committed", "pending"), f"message.send was refused: {r}")
    st = wait_committed(node, eid, timeout)
    # The recipient's side: its inbox is its agent stream's message.send events.
    inbox = [ev for ev in node.get(f"/v1/streams/agent/{peer}?limit=500")["events"] if ev["kind"] == "message.send"]
    mine = [ev for ev in inbox if ev["id"] == eid]
    check(len(mine) == 1, f"message {eid} is not in the recipient's stream ({len(inbox)} messages there)")
    got = mine[0]
    check(got["author"] == me and got["payload"]["to"] == peer, f"message {eid}: author {got['author']}, to {got['payload']['to']}")
    opened = nacl.public.SealedBox(peer_key.to_curve25519_private_key()).decrypt(bytes.fromhex(got["payload"]["sealed"]))
    check(opened == text.encode(), f"the message opened to {opened!r}")
    try:
        nacl.public.SealedBox(nacl.public.PrivateKey.generate()).decrypt(bytes.fromhex(got["payload"]["sealed"]))
        raise Failure("a sealed message opened with another key")
    except nacl.exceptions.CryptoError:
        pass
    log(f"ok: a sealed message to {peer[:16]}… (event {eid[:16]}…, height {st['height']}) opened by its recipient, "
        f"sent by {me[:16]}… on the log, and by no other key")


def pick_alliance_target(node, me):
    """Another participant (FORMAT.md §3: a registered agent or an active validator)."""
    for v in node.get("/v1/validators")["validators"]:
        if v["status"] == "active" and v["id"] != me:
            return v["id"]
    for a in node.get("/v1/agents")["agents"]:
        if a["active"] and a["agent"] != me:
            return a["agent"]
    return None


def wait_committed(node, eid, timeout):
    """Polls the event status route until the event is committed."""
    end = time.monotonic() + timeout
    while True:
        st = node.get(f"/v1/events/{eid}", allow_404=True)
        if st is None:
            raise Failure(f"event {eid} is unknown to the node: it was dropped from the mempool")
        if st["status"] == "committed":
            return st
        if time.monotonic() > end:
            raise Failure(f"event {eid} still {st['status']} after {timeout} s")
        time.sleep(0.2)


def wait_account(node, key, nonce, timeout):
    """The account once its nonce reached `nonce` (the head state can trail a receipt by a block)."""
    end = time.monotonic() + timeout
    while True:
        account = node.get(f"/v1/accounts/{key}")
        if account["nonce"] >= nonce:
            check(account["nonce"] == nonce, f"account nonce {account['nonce']}, expected {nonce}: another client used this key")
            return account
        if time.monotonic() > end:
            raise Failure(f"account nonce {account['nonce']}, expected {nonce} after {timeout} s")
        time.sleep(0.2)


def self_test(path):
    """Decodes every event of vectors.json with KINDS, re-encodes and re-signs it, and
    compares bytes, id and signature: a check of the codec that needs no node."""
    doc = json.load(open(path))
    chain = chain_bytes(doc["chainId"])
    keys = {k["publicKey"]: nacl.signing.SigningKey(bytes.fromhex(k["seed"])) for k in doc["keys"]}
    seen = set()
    for v in doc["events"]:
        b = bytes.fromhex(v["bytes"])
        kind, c, author, nonce, fee, fields, sig, unsigned = decode_event(b)
        check(kind == v["kind"] and c == chain and author == v["author"], f"{v['kind']}: envelope fields")
        check(encode_payload(kind, fields).hex() == v["payload"], f"{kind}: payload does not re-encode to the same bytes")
        check(sign_event(keys[author], chain, kind, nonce, fee, fields) == b, f"{kind}: re-signed event differs")
        check(event_id(b) == v["id"], f"{kind}: id")
        key = nacl.signing.VerifyKey(bytes.fromhex(author))
        key.verify(domain("CHAOSLEDGER/EVENT", 1, chain) + unsigned, sig)
        seen.add(kind)
    missing = set(KINDS) - seen
    log(f"self-test: {len(doc['events'])} vector events decoded, re-encoded and re-signed byte for byte"
        + (f"; kinds without a vector: {sorted(missing)}" if missing else ""))


def main():
    p = argparse.ArgumentParser(description="A ChaosLedger agent written from schemas/ alone (see the file header).")
    p.add_argument("--node", default="http://127.0.0.1:8100", help="the node's HTTP API (default: the devnet's first validator)")
    p.add_argument("--key", default="agent.key", help="key file (FORMAT.md §8); created with a new key if missing")
    p.add_argument("--passphrase-env", default="CHAOSLEDGER_PASSPHRASE", help="variable holding an encrypted key's passphrase")
    p.add_argument("--name", default="python-example-agent")
    p.add_argument("--capabilities", default="memes,audit", help="comma-separated")
    p.add_argument("--personality", default="lawful")
    p.add_argument("--endpoint", default="https://agents.example/python")
    p.add_argument("--to", help="transfer recipient, 64 hex digits (default: a new key)")
    p.add_argument("--amount", type=int, default=1000, help="transfer amount")
    p.add_argument("--peer-key", help="a second agent's key file: send it a sealed message and read it as that agent")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a commit")
    p.add_argument("--self-test", metavar="VECTORS", help="check the codec against schemas/vectors.json and exit")
    args = p.parse_args()
    try:
        if args.self_test:
            self_test(args.self_test)
        else:
            if args.to and not re.fullmatch(r"[0-9a-fA-F]{64}", args.to):
                raise Unusable("--to must be 64 hex digits")
            if args.to:
                args.to = args.to.lower()
            run(args)
    except Failure as e:
        print(f"example_agent: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except Unusable as e:
        print(f"example_agent: cannot run: {e}", file=sys.stderr)
        sys.exit(2)
    except (ValueError, nacl.exceptions.BadSignatureError) as e:
        print(f"example_agent: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except (KeyError, TypeError) as e:
        print(f"example_agent: FAIL: a response lacks a field openapi.yaml documents ({e!r})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
