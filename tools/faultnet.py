#!/usr/bin/env python3
"""The fault harness (issue 16): real validator processes, each in its own network
namespace, under a steady load of agents whose acknowledged events are recorded, and a
schedule of faults rotating over the nodes: kill -9 and restart, SIGSTOP and SIGCONT,
isolation from the other validators (iptables), and loss of a share of a node's input
(iptables' statistic match: the kernel here has no netem).

It reports acknowledged events missing from any node's log, duplicates, each node's
replay state root, and every commit pause: the longest stretch without a new height
while an agent waited, overall and during each fault. It exits 1 when anything was lost
or duplicated, the roots differ, or a pause exceeded --max-pause while at most
--faulty validators were faulty.

Runs as root (namespaces, iptables). Needs iptables (installed if missing) and PyNaCl
(tools/setup.sh). Addresses are 10.77.60.0/24 inside namespaces it creates and removes.

    python3 tools/faultnet.py --bin .build/release/chaosledger --validators 4 --faulty 1 --duration 600
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_agent as ea  # noqa: E402  (the protocol's Python encoders: FORMAT.md)

SUBNET = "10.77.60"
BRIDGE = "clfbr0"
KINDS = ["kill", "pause", "isolate", "loss"]


def sh(*args, check=True, quiet=True):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def ensure_iptables():
    if shutil.which("iptables"):
        return
    print("faultnet: installing iptables", flush=True)
    sh("apt-get", "update", "-qq")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "iptables"], check=True, env=env, stdout=subprocess.DEVNULL)


class Net:
    """A bridge in the root namespace (the harness is 10.77.60.254) and one namespace
    per node, joined by veth pairs. Faults are rules in two chains of the node's own
    namespace: CLIN (its input) and CLOUT (its output)."""

    def __init__(self, n):
        self.n = n

    @staticmethod
    def ns(i):
        return f"clf{i}"

    @staticmethod
    def ip(i):
        return f"{SUBNET}.{i + 1}"

    def x(self, i, *args, check=True):
        return sh("ip", "netns", "exec", self.ns(i), *args, check=check)

    def up(self):
        self.down()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i in range(self.n):
            ns, a, b = self.ns(i), f"clfv{i}", f"clfp{i}"
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "master", BRIDGE)
            sh("ip", "link", "set", a, "up")
            sh("ip", "link", "set", b, "netns", ns)
            self.x(i, "ip", "link", "set", "lo", "up")
            self.x(i, "ip", "addr", "add", f"{self.ip(i)}/24", "dev", b)
            self.x(i, "ip", "link", "set", b, "up")
            for chain, hook in (("CLIN", "INPUT"), ("CLOUT", "OUTPUT")):
                self.x(i, "iptables", "-N", chain)
                self.x(i, "iptables", "-I", hook, "-j", chain)

    def down(self):
        for i in range(64):
            sh("ip", "netns", "del", self.ns(i), check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    def isolate(self, i):
        # Cut off from the other validators; the harness (.254) still reaches it.
        self.x(i, "iptables", "-A", "CLIN", "-s", f"{SUBNET}.254", "-j", "ACCEPT")
        self.x(i, "iptables", "-A", "CLIN", "-s", f"{SUBNET}.0/24", "-j", "DROP")
        self.x(i, "iptables", "-A", "CLOUT", "-d", f"{SUBNET}.254", "-j", "ACCEPT")
        self.x(i, "iptables", "-A", "CLOUT", "-d", f"{SUBNET}.0/24", "-j", "DROP")

    def lose(self, i, p):
        self.x(i, "iptables", "-A", "CLIN", "-m", "statistic", "--mode", "random", "--probability", str(p), "-j", "DROP")

    def heal(self, i):
        self.x(i, "iptables", "-F", "CLIN")
        self.x(i, "iptables", "-F", "CLOUT")


class Cluster:
    def __init__(self, args, net):
        self.args, self.net, self.dir = args, net, os.path.abspath(args.dir)
        self.procs = {}
        self.lock = threading.Lock()

    def prepare(self):
        if os.path.exists(self.dir):
            shutil.rmtree(self.dir)
        sh(self.args.bin, "devnet", "--prepare-only", "--dir", self.dir, "--validators", str(self.args.validators),
           "--agents", str(self.args.agents))
        os.makedirs(self.dir + "/logs", exist_ok=True)
        n = self.args.validators
        for i in range(n):
            path = f"{self.dir}/node-{i}.json"
            c = json.load(open(path))
            c["mesh"] = {"host": self.net.ip(i), "port": 7100, "followers": [],
                         "bootstrap": [f"{self.net.ip(j)}:7100" for j in range(n) if j != i]}
            c["http"] = {"host": "0.0.0.0", "port": 8100, "requestsPerSecond": 5000}
            c["consensus"]["viewTimeoutMs"] = self.args.view_timeout_ms
            json.dump(c, open(path, "w"), indent=1)

    def start(self, i):
        out = open(f"{self.dir}/logs/node-{i}.log", "a")
        p = subprocess.Popen(["ip", "netns", "exec", self.net.ns(i), self.args.bin, "node", "--config", f"{self.dir}/node-{i}.json"],
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        with self.lock:
            self.procs[i] = p

    def signal(self, i, sig):
        with self.lock:
            p = self.procs.get(i)
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass

    def kill9(self, i):
        self.signal(i, signal.SIGKILL)
        with self.lock:
            p = self.procs.get(i)
        if p:
            p.wait()

    def stop_all(self):
        for i in list(self.procs):
            self.signal(i, signal.SIGCONT)
            self.signal(i, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    def url(self, i):
        return f"http://{self.net.ip(i)}:8100"


def get(url, timeout):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return json.loads(r.read())


def post(url, body, timeout):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with opener.open(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return json.loads(e.read() or b"{}")


class Load:
    """Agents submitting signed transfers with wait=true, one at a time, to random nodes.
    An event not yet known committed is sent again, the same bytes, to another node.

    Agents fail over as a client should: a node that does not answer within 2 s, or
    does not see the event committed within its 1 s wait, is passed over for
    AVOID_SECONDS. (With a 5 s timeout and no memory of it, most agents sat waiting on a
    SIGSTOPped node, whose kernel still accepts connections, and the cluster, idle for
    want of load, showed 3-5 s "pauses" that were the agents' own.)"""

    AVOID_SECONDS = 10

    def __init__(self, cluster, chain, fee):
        self.c, self.chain, self.fee = cluster, chain, fee
        self.acked = {}  # id -> (agent, nonce)
        self.waiting = {}  # agent -> since (monotonic)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = 0

    def run_agent(self, k):
        key = ea.load_or_create_key(f"{self.c.dir}/keys/agent-{k}.key", "X")
        me = bytes(key.verify_key).hex()
        to = bytes(ea.load_or_create_key(f"{self.c.dir}/keys/agent-{(k + 1) % self.c.args.agents}.key", "X").verify_key).hex()
        rng = random.Random(k)
        avoid = {}  # node -> until when this agent passes it over
        nonce = None
        n = self.c.args.validators
        while not self.stop.is_set():
            if nonce is None:
                for _ in range(50):
                    try:
                        nonce = get(f"{self.c.url(rng.randrange(n))}/v1/accounts/{me}", 1)["nonce"] + 1
                        break
                    except Exception:
                        time.sleep(0.2)
                if nonce is None:
                    continue
            ev = ea.sign_event(key, self.chain, "transfer", nonce, self.fee, {"to": to, "amount": 1, "memo": f"faultnet {k}/{nonce}"})
            eid = ea.event_id(ev)
            with self.lock:
                self.waiting[k] = time.monotonic()
            done = False
            while not done and not self.stop.is_set():
                now = time.monotonic()
                i = rng.choice([j for j in range(n) if avoid.get(j, 0) <= now] or list(range(n)))
                try:
                    r = post(f"{self.c.url(i)}/v1/events?wait=true&timeoutMs=1000", ev, 2)["receipts"][0]
                except Exception:
                    avoid[i] = time.monotonic() + self.AVOID_SECONDS
                    time.sleep(0.05)
                    continue
                st, code = r.get("status"), r.get("code")
                if st != "committed" and code != "duplicate":
                    avoid[i] = time.monotonic() + self.AVOID_SECONDS
                if st == "committed" or code == "duplicate":
                    with self.lock:
                        self.acked[eid] = (k, nonce)
                    nonce += 1
                    done = True
                elif st == "rejected" and code not in ("disk_full", "stopping", "mempool_full"):
                    # Its nonce went to another event, or it can never commit: start again.
                    self.errors += 1
                    nonce = None
                    done = True
            with self.lock:
                self.waiting.pop(k, None)

    def oldest_wait(self):
        with self.lock:
            return min(self.waiting.values()) if self.waiting else None


class Monitor:
    """Polls every node's status; a commit is a new highest height anywhere."""

    def __init__(self, cluster, load):
        self.c, self.load = cluster, load
        self.top, self.last_commit = 0, time.monotonic()
        self.pauses = []  # (start, end) with work waiting throughout
        self.stop = threading.Event()
        self.rows = []

    def run(self):
        n = self.c.args.validators
        while not self.stop.is_set():
            t = time.monotonic()
            hs = []
            for i in range(n):
                try:
                    s = get(f"{self.c.url(i)}/v1/status", 0.25)
                    hs.append((s["height"], s["view"], s["changing"]))
                except Exception:
                    hs.append(None)
            self.rows.append((t, hs))
            top = max([h[0] for h in hs if h] or [0])
            if top > self.top:
                since = max(self.last_commit, self.load.oldest_wait() or t)
                if t > since:
                    self.pauses.append((since, t))
                self.top, self.last_commit = top, t
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))

    def open_pause(self):
        w = self.load.oldest_wait()
        if w is None:
            return None
        since = max(self.last_commit, w)
        return (since, time.monotonic())


def schedule(args, cluster, net, faults, stop):
    """One fault every --period seconds for --fault-seconds, on the next --faulty nodes."""
    n, k, rng = args.validators, 0, random.Random(args.seed)
    t0 = time.monotonic()
    while not stop.is_set():
        start = t0 + (k + 1) * args.period
        if start + args.fault_seconds > t0 + args.duration:
            break
        while time.monotonic() < start and not stop.is_set():
            time.sleep(0.05)
        if stop.is_set():
            break
        kinds = args.kinds.split(",")
        kind = kinds[k % len(kinds)] if not args.random_kinds else rng.choice(kinds)
        nodes = [(k * args.faulty + j) % n for j in range(args.faulty)]
        t = time.monotonic()
        for i in nodes:
            if kind == "kill":
                cluster.kill9(i)
            elif kind == "pause":
                cluster.signal(i, signal.SIGSTOP)
            elif kind == "isolate":
                net.isolate(i)
            else:
                net.lose(i, 0.2)
        print(f"faultnet: t={t - t0:6.1f}s {kind} {nodes}", flush=True)
        if kind == "kill":
            time.sleep(3)
            for i in nodes:
                cluster.start(i)
        while time.monotonic() < t + args.fault_seconds and not stop.is_set():
            time.sleep(0.05)
        for i in nodes:
            if kind == "pause":
                cluster.signal(i, signal.SIGCONT)
            elif kind in ("isolate", "loss"):
                net.heal(i)
        faults.append({"kind": kind, "nodes": nodes, "start": t, "end": time.monotonic()})
        k += 1


def flood_sign(cluster, chain, accounts, events):
    """Future-nonce events (next+2, next+3, …, never next+1) for each flooding account,
    signed before the measurement starts: an attacker signs elsewhere, not on the
    nodes' cores."""
    per = max(1, events // len(accounts))
    out = {}
    for k in accounts:
        key = ea.load_or_create_key(f"{cluster.dir}/keys/agent-{k}.key", "X")
        me = bytes(key.verify_key).hex()
        base = get(f"{cluster.url(0)}/v1/accounts/{me}", 2)["nonce"]
        out[k] = [ea.sign_event(key, chain, "transfer", base + 2 + j, 1_000, {"to": me, "amount": 1, "memo": "flood"}) for j in range(per)]
    return out


def flood(cluster, signed, stop, counts):
    """Submits the flood in batches of 500 to every node in turn: events that never
    commit and never pay."""
    n = cluster.args.validators

    def one(evs):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        for b in range(0, len(evs), 500):
            if stop.is_set():
                return
            doc = json.dumps({"events": [e.hex() for e in evs[b:b + 500]]}).encode()
            req = urllib.request.Request(f"{cluster.url(b // 500 % n)}/v1/events", data=doc, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with opener.open(req, timeout=10) as r:
                    body = json.loads(r.read())
            except urllib.error.HTTPError as e:
                body = json.loads(e.read() or b"{}")
            except Exception:
                continue
            for rc in body.get("receipts", []):
                key_ = rc.get("code") or rc.get("status")
                counts[key_] = counts.get(key_, 0) + 1

    threads = [threading.Thread(target=one, args=(evs,), daemon=True) for evs in signed.values()]
    for t in threads:
        t.start()
    return threads


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else 0.0


class FloodDone(Exception):
    pass


def flood_main(args, cluster, load, mon, chain, honest):
    """Honest next-nonce throughput without and with a future-nonce flood (issue 16)."""
    signed = flood_sign(cluster, chain, list(range(honest, args.agents)), args.flood)
    threads = [threading.Thread(target=load.run_agent, args=(k,), daemon=True) for k in range(honest)]
    threading.Thread(target=mon.run, daemon=True).start()
    for t in threads:
        t.start()
    half = args.duration / 2
    time.sleep(5)  # warm up
    a0 = len(load.acked)
    time.sleep(half)
    a1 = len(load.acked)
    counts, stop = {}, threading.Event()
    t_flood = time.monotonic()
    flooders = flood(cluster, signed, stop, counts)
    submitted_at = None
    while time.monotonic() < t_flood + half:
        if submitted_at is None and not any(t.is_alive() for t in flooders):
            submitted_at = time.monotonic() - t_flood
        time.sleep(0.1)
    a2 = len(load.acked)
    stop.set()
    load.stop.set()
    for t in flooders:
        t.join(timeout=30)
    mempools = []
    for i in range(args.validators):
        try:
            mempools.append(get(f"{cluster.url(i)}/v1/status", 2)["mempool"])
        except Exception:
            mempools.append(None)
    base, flooded = (a1 - a0) / half, (a2 - a1) / half
    ratio = flooded / base if base else 0.0
    report = {"validators": args.validators, "honestAgents": honest, "floodAccounts": args.flood_accounts, "floodEvents": args.flood,
              "floodReceipts": counts, "honestEventsPerSecond": {"withoutFlood": round(base, 1), "withFlood": round(flooded, 1)},
              "ratio": round(ratio, 3), "mempoolAfter": mempools, "floodSeconds": round(time.monotonic() - t_flood, 1),
              "floodSubmittedAfterSeconds": round(submitted_at, 1) if submitted_at else None}
    print(json.dumps(report, indent=1), flush=True)
    if args.report:
        json.dump(report, open(args.report, "w"), indent=1)
    ok = ratio >= 0.8
    print(f"faultnet: {'PASS' if ok else 'FAIL'}: honest throughput with the flood is {ratio:.0%} of without ({flooded:.1f} vs {base:.1f} events/s)", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=".build/release/chaosledger")
    ap.add_argument("--dir", default="data/faultnet")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--faulty", type=int, default=1, help="validators faulted at once (at most f)")
    ap.add_argument("--agents", type=int, default=8)
    ap.add_argument("--duration", type=float, default=600, help="seconds of load and faults")
    ap.add_argument("--period", type=float, default=20, help="a fault starts every this many seconds")
    ap.add_argument("--fault-seconds", type=float, default=10)
    ap.add_argument("--view-timeout-ms", type=int, default=1000)
    ap.add_argument("--max-pause", type=float, default=5.0, help="longest commit pause allowed (s)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="the fault kinds to rotate over, comma-separated (default: all)")
    ap.add_argument("--random-kinds", action="store_true", help="draw each fault's kind instead of rotating")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", help="write the report as JSON here")
    ap.add_argument("--timeline", help="write every node's height and view at each poll (JSON lines) here")
    ap.add_argument("--flood", type=int, default=0, metavar="EVENTS",
                    help="no faults: measure honest throughput for --duration/2 s, then again while "
                         "--flood-accounts funded keys submit EVENTS future-nonce events")
    ap.add_argument("--flood-accounts", type=int, default=11)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("faultnet: run as root (network namespaces and iptables)")
    if args.faulty < 1 or 3 * args.faulty >= args.validators:
        sys.exit(f"faultnet: {args.faulty} faulty of {args.validators} is more than f")
    if any(k not in KINDS for k in args.kinds.split(",")):
        sys.exit(f"faultnet: --kinds takes some of {','.join(KINDS)}")
    args.bin = os.path.abspath(args.bin)
    honest_agents = args.agents
    if args.flood:
        args.agents = honest_agents + args.flood_accounts  # the flooders' keys are funded too
    ensure_iptables()
    net = Net(args.validators)
    net.up()
    cluster = Cluster(args, net)
    ok = False
    try:
        cluster.prepare()
        for i in range(args.validators):
            cluster.start(i)
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status is None:
            try:
                status = get(f"{cluster.url(0)}/v1/status", 1)
            except Exception:
                time.sleep(0.2)
        if status is None:
            raise RuntimeError("node 0 did not answer within 60 s")
        chain = ea.chain_bytes(status["chainId"])
        load = Load(cluster, chain, fee=1_000)
        mon = Monitor(cluster, load)
        if args.flood:
            ok = flood_main(args, cluster, load, mon, chain, honest_agents)
            raise FloodDone()
        threads = [threading.Thread(target=load.run_agent, args=(k,), daemon=True) for k in range(args.agents)]
        threads.append(threading.Thread(target=mon.run, daemon=True))
        for t in threads:
            t.start()
        faults, stop = [], threading.Event()
        t0 = time.monotonic()
        print(f"faultnet: {args.validators} validators, {args.faulty} faulty at a time, {args.agents} agents, {args.duration:.0f} s", flush=True)
        schedule(args, cluster, net, faults, stop)
        while time.monotonic() < t0 + args.duration:
            time.sleep(0.1)
        open_pause = mon.open_pause()
        load.stop.set()
        time.sleep(4)
        mon.stop.set()
        # Converge: every node at one height for 3 s.
        same_since, heights = None, []
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                heights = [get(f"{cluster.url(i)}/v1/status", 1)["height"] for i in range(args.validators)]
            except Exception:
                heights = []
            if heights and len(set(heights)) == 1:
                same_since = same_since or time.monotonic()
                if time.monotonic() - same_since >= 3:
                    break
            else:
                same_since = None
            time.sleep(0.2)
        # Every node's events: acknowledged ones present once, nothing twice.
        acked = dict(load.acked)
        missing, duplicates = {}, {}
        for i in range(args.validators):
            seen, nxt = {}, 0
            while True:
                page = get(f"{cluster.url(i)}/v1/events?from={nxt}&limit=5000", 10)
                evs = page["events"] if isinstance(page, dict) else page
                if not evs:
                    break
                for e in evs:
                    seen[e["id"]] = seen.get(e["id"], 0) + 1
                nxt = evs[-1]["sequence"] + 1
            missing[i] = sum(1 for eid in acked if eid not in seen)
            duplicates[i] = sum(1 for c in seen.values() if c > 1)
        cluster.stop_all()
        roots = {}
        for i in range(args.validators):
            r = sh(args.bin, "replay", "--dir", f"{cluster.dir}/node-{i}/log", check=False)
            line = [ln for ln in r.stdout.splitlines() if ln.startswith("state root ")]
            roots[i] = (line[-1].split()[-1] if line else "?") + ("" if "OK" in r.stdout else " (replay FAILED)")
        pauses = [(b - a) for a, b in mon.pauses]
        if open_pause:
            pauses.append(open_pause[1] - open_pause[0])
        per_fault = []
        for f in faults:
            worst = max([min(b, f["end"] + 10) - max(a, f["start"]) for a, b in mon.pauses if b > f["start"] and a < f["end"] + 10] or [0.0])
            per_fault.append({"kind": f["kind"], "nodes": f["nodes"], "at": round(f["start"] - t0, 1), "longestPause": round(worst, 2)})
        report = {
            "validators": args.validators, "faultyAtOnce": args.faulty, "seconds": args.duration, "faults": len(faults),
            "acknowledged": len(acked), "missing": missing, "duplicates": duplicates, "roots": roots, "heights": heights,
            "agentRestarts": load.errors,
            "pauses": {"count": len(pauses), "p50": round(percentile(pauses, 0.5), 3), "p90": round(percentile(pauses, 0.9), 3),
                       "p99": round(percentile(pauses, 0.99), 3), "max": round(max(pauses or [0]), 3),
                       "over1s": sum(1 for p in pauses if p > 1), "over5s": sum(1 for p in pauses if p > 5)},
            "perFault": per_fault,
        }
        print(json.dumps(report, indent=1), flush=True)
        if args.report:
            json.dump(report, open(args.report, "w"), indent=1)
        if args.timeline:
            # Every node's (height, view) each poll, and the faults, in seconds from the
            # start: where a pause came from (which node led, who changed view when).
            with open(args.timeline, "w") as out:
                for f in faults:
                    out.write(json.dumps({"t": round(f["start"] - t0, 2), "fault": f["kind"], "nodes": f["nodes"],
                                          "end": round(f["end"] - t0, 2)}) + "\n")
                for t, hs in mon.rows:
                    out.write(json.dumps({"t": round(t - t0, 2), "nodes": hs}) + "\n")
        problems = []
        if any(missing.values()):
            problems.append(f"acknowledged events missing: {missing}")
        if any(duplicates.values()):
            problems.append(f"duplicates: {duplicates}")
        if len(set(roots.values())) != 1 or any("FAILED" in r for r in roots.values()):
            problems.append(f"replay roots differ or fail: {roots}")
        if report["pauses"]["max"] > args.max_pause:
            problems.append(f"a commit pause of {report['pauses']['max']} s (limit {args.max_pause} s)")
        if not acked:
            problems.append("no event was acknowledged")
        for p in problems:
            print(f"faultnet: FAIL: {p}", flush=True)
        ok = not problems
        print(f"faultnet: {'PASS' if ok else 'FAIL'}: {len(acked)} acknowledged, {len(faults)} faults, longest pause {report['pauses']['max']} s", flush=True)
    except FloodDone:
        pass
    finally:
        cluster.stop_all()
        net.down()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
