#!/usr/bin/env python3
"""A peer that lies: an HTTP proxy in front of a node's API that flips one bit of every
state-sync chunk it passes on (`/v1/sync/chunks`) and forwards everything else as is.
The cluster test puts it first in a syncing node's --state-sync-from list: the node must
refuse its chunks, score it down and sync from an honest peer.

    python3 tools/lying_proxy.py LISTEN_PORT UPSTREAM_URL [flip|huge|trickle]

`huge` answers a chunk with bytes that never end, `trickle` with one byte a second: the
syncing node must give up on that request within its bound and its deadline. Port 0
takes a free port; the port is printed on the first line either way.
"""
import http.server
import signal
import sys
import time
import urllib.error
import urllib.request

PORT, UPSTREAM = int(sys.argv[1]), sys.argv[2].rstrip("/")
MODE = sys.argv[3] if len(sys.argv) > 3 else "flip"
# A parent may have SIGTERM blocked (the test runner's threads): take it back.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


class Liar(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/v1/sync/chunks") and MODE in ("huge", "trickle"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(bytes(65536) if MODE == "huge" else b"\x00")
                    self.wfile.flush()
                    if MODE == "trickle":
                        time.sleep(1)
            except (BrokenPipeError, ConnectionResetError):
                return
        try:
            with urllib.request.urlopen(UPSTREAM + self.path, timeout=60) as r:
                status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as e:
            status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "application/json")
        if self.path.startswith("/v1/sync/chunks") and status == 200 and body:
            lie = bytearray(body)
            lie[-1] ^= 1
            body = bytes(lie)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Liar)
print(server.server_address[1], flush=True)
server.serve_forever()
