#!/usr/bin/env python3
"""Hostile HTTP clients against one node (issue 16): subscribers that never read and
slowloris connections that never finish their headers, while /v1/status is timed and
the node's resident memory is sampled. Reports the status p50/p99/max during the
attack, memory before, at its peak and after the attackers leave, and how many
attacker connections the node closed.

    python3 tools/apiflood.py --bin .build/release/chaosledger --subscribers 300 --slowloris 1500 --seconds 60

It starts a devnet (4 validators, agents at --rate events/s) in --dir and attacks
validator 0 on 127.0.0.1:8100.
"""

import argparse
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def rss_mb(pid, field="VmRSS"):
    """Resident memory, MB: all of it (VmRSS), or the heap and stacks only (RssAnon; the
    rest is the log's pages mapped from the file, which the kernel reclaims as cache)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def node_pid(dir_):
    want = os.path.abspath(dir_) + "/node-0.json"
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if b"node" in cmd and any(c.decode(errors="ignore").endswith("node-0.json") and os.path.abspath(c.decode()) == want for c in cmd if c):
                return int(p)
    return None


def status_ms(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    t = time.monotonic()
    try:
        with opener.open(url + "/v1/status", timeout=5) as r:
            r.read()
        return (time.monotonic() - t) * 1000
    except Exception:
        return 5000.0


class Attack:
    def __init__(self, host, port, subscribers, slowloris):
        self.host, self.port = host, port
        self.want_sub, self.want_slow = subscribers, slowloris
        self.subs, self.slow = [], []
        self.closed_by_node = 0
        self.stop = threading.Event()

    def connect(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that takes nothing
        s.settimeout(5)
        s.connect((self.host, self.port))
        s.setblocking(False)
        return s

    def run(self):
        last_trickle = 0.0
        while not self.stop.is_set():
            # Top up: a subscriber or slowloris the node closed comes back.
            while len(self.subs) < self.want_sub and not self.stop.is_set():
                try:
                    s = self.connect()
                    s.send(b"GET /v1/subscribe?from=0 HTTP/1.1\r\nHost: x\r\n\r\n")
                    self.subs.append(s)
                except OSError:
                    break
            while len(self.slow) < self.want_slow and not self.stop.is_set():
                try:
                    s = self.connect()
                    s.send(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
                    self.slow.append(s)
                except OSError:
                    break
            # A slowloris sends one more header byte now and then; nobody reads.
            if time.monotonic() - last_trickle > 2:
                last_trickle = time.monotonic()
                for s in list(self.slow):
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
            # Find the ones the node closed (readable with EOF or an error). poll, not
            # select: the descriptors go past 1024.
            p = select.poll()
            owner = {}
            for group in (self.subs, self.slow):
                for s in group:
                    p.register(s.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
                    owner[s.fileno()] = (s, group)
            for fd, ev in p.poll(0):
                s, group = owner[fd]
                closed = bool(ev & (select.POLLERR | select.POLLHUP))
                if not closed:
                    try:
                        # A subscriber's socket is readable all the time (it never reads):
                        # only a peek of EOF tells it was closed; a slowloris gets nothing
                        # but a close (or an error response before it).
                        data = s.recv(1, socket.MSG_PEEK) if group is self.subs else s.recv(1 << 16)
                        closed = data == b""
                    except (OSError, ConnectionError):
                        closed = True
                if closed:
                    group.remove(s)
                    s.close()
                    self.closed_by_node += 1
            time.sleep(0.5)
        for s in self.subs + self.slow:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=".build/release/chaosledger")
    ap.add_argument("--dir", default="data/apiflood")
    ap.add_argument("--subscribers", type=int, default=300)
    ap.add_argument("--slowloris", type=int, default=1500)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=100)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.path.exists(args.dir):
        subprocess.run(["rm", "-rf", args.dir], check=True)
    dev = subprocess.Popen([os.path.abspath(args.bin), "devnet", "--dir", args.dir, "--rate", str(args.rate), "--no-economy-tour",
                            "--duration", str(args.seconds * 3 + 60)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    url = "http://127.0.0.1:8100"
    try:
        deadline = time.monotonic() + 120
        while status_ms(url) >= 5000 and time.monotonic() < deadline:
            time.sleep(0.5)
        pid = node_pid(args.dir)
        if pid is None:
            sys.exit("apiflood: validator 0 is not running")
        time.sleep(10)
        before = [status_ms(url) for _ in range(50)]
        rss0, anon0 = rss_mb(pid), rss_mb(pid, "RssAnon")
        attack = Attack("127.0.0.1", 8100, args.subscribers, args.slowloris)
        t = threading.Thread(target=attack.run, daemon=True)
        t.start()
        lat, peak, anon_peak, end = [], rss0, anon0, time.monotonic() + args.seconds
        slow, t_attack = [], time.monotonic()
        while time.monotonic() < end:
            ms = status_ms(url)
            lat.append(ms)
            if ms > 100:
                slow.append((round(time.monotonic() - t_attack - ms / 1000, 1), round(ms)))
            peak = max(peak, rss_mb(pid) or 0)
            anon_peak = max(anon_peak, rss_mb(pid, "RssAnon") or 0)
            time.sleep(0.1)
        open_subs, open_slow = len(attack.subs), len(attack.slow)
        attack.stop.set()
        t.join(timeout=30)
        time.sleep(15)
        rss1, anon1 = rss_mb(pid), rss_mb(pid, "RssAnon")
        lat.sort()
        p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))]
        before.sort()
        print(f"apiflood: {args.subscribers} subscribers that never read, {args.slowloris} slowloris connections, {args.seconds:.0f} s")
        print(f"  /v1/status before: p50 {before[len(before) // 2]:.1f} ms, max {before[-1]:.1f} ms")
        print(f"  /v1/status during: p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms ({len(lat)} requests)")
        print(f"  requests over 100 ms: {len(slow)} (started at s, took ms): {slow[:20]}")
        print(f"  attacker connections the node closed: {attack.closed_by_node} (open at the end: {open_subs} subscribers, {open_slow} slowloris)")
        print(f"  validator 0 resident memory: {rss0:.0f} MB before, {peak:.0f} MB at most, {rss1:.0f} MB 15 s after the attackers left")
        print(f"    of which heap and stacks (RssAnon): {anon0:.0f} MB before, {anon_peak:.0f} MB at most, {anon1:.0f} MB after")
        ok = p(0.99) < 100
        print(f"apiflood: {'PASS' if ok else 'FAIL'}: status p99 {p(0.99):.1f} ms (limit 100 ms)")
        sys.exit(0 if ok else 1)
    finally:
        try:
            os.killpg(dev.pid, signal.SIGINT)
            dev.wait(timeout=30)
        except Exception:
            dev.kill()


if __name__ == "__main__":
    main()
