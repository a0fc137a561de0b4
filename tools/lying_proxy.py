#!/usr/bin/env python3
"""A peer that lies: an HTTP proxy in front of a node's API that flips one bit of every
state-sync chunk it passes on (`/v1/sync/chunks`) and forwards everything else as is.
The cluster test puts it first in a syncing node's --state-sync-from list: the node must
refuse its chunks, score it down and sync from an honest peer.

    python3 tools/lying_proxy.py LISTEN_PORT UPSTREAM_URL
"""
import http.server
import signal
import sys
import urllib.error
import urllib.request

PORT, UPSTREAM = int(sys.argv[1]), sys.argv[2].rstrip("/")
# A parent may have SIGTERM blocked (the test runner's threads): take it back.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


class Liar(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
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


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Liar).serve_forever()
