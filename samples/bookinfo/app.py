#!/usr/bin/env python3
"""Bookinfo, the tiny version: one standard-library HTTP service per role.

    productpage ──► details
         └───────► reviews (v1 | v2 | v3) ──► ratings   (v2 and v3 only)

Every service answers with its name and version (for example `reviews-v3`), so
whoever sends traffic can see which version served it. productpage calls
details and reviews, and forwards the `end-user` header (and the tracing
headers) so header-based route rules such as "end-user: jason goes to v2"
apply on the reviews hop, as in Istio's bookinfo.

`GET /stream?seconds=N` answers with one line per second for N seconds (a
long-lived response, for tests that rotate certificates under live streams).

Usage: python3 app.py --service reviews --version v3 [--port 9080]
Services are reached by name (`details:9080`); in the local mesh the pod's
/etc/hosts maps those names to Service VIPs.
"""

import argparse
import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Headers copied from the incoming request onto outgoing calls.
PROPAGATED = ("end-user", "x-request-id", "x-b3-traceid", "x-b3-spanid",
              "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "traceparent")
STARS = {"v2": "black", "v3": "red"}


def call(host, path, headers, timeout):
    """GET http://host:9080/path; returns (status, body) or (None, reason)."""
    conn = http.client.HTTPConnection(host, 9080, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace").strip()
    except OSError as err:
        return None, f"{type(err).__name__}: {err}"
    finally:
        conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Envoy expects
    server_version = "bookinfo"

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, "ok")
        me = f"{self.server.service}-{self.server.version}"
        if self.path.startswith("/stream?seconds="):
            return self.stream(me, self.path.rpartition("=")[2])
        fwd = {k: v for k, v in self.headers.items() if k.lower() in PROPAGATED}
        role = self.server.service
        if role == "productpage":
            status_d, details = call("details", "/details", fwd, 3.0)
            status_r, reviews = call("reviews", "/reviews", fwd, 3.0)
            ok = status_d == 200 and status_r == 200
            body = f"{me}\ndetails: {details}\nreviews: {reviews}"
            return self.reply(200 if ok else 502, body)
        if role == "reviews" and self.server.version in STARS:
            status, ratings = call("ratings", "/ratings", fwd, 2.5)
            rating = ratings if status == 200 else "ratings unavailable"
            return self.reply(200, f"{me} ({STARS[self.server.version]} stars, {rating})")
        if role == "ratings":
            return self.reply(200, f"{me} 5/5")
        return self.reply(200, me)

    def reply(self, status, text):
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-served-by", f"{self.server.service}-{self.server.version}")
        self.end_headers()
        self.wfile.write(data)

    def stream(self, me, seconds):
        if not seconds.isdigit() or not 0 < int(seconds) <= 3600:
            return self.reply(400, f"seconds={seconds!r}: want 1..3600")
        self.send_response(200)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(int(seconds)):
            line = f"{me} {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            time.sleep(1)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, fmt, *args):
        pass  # one line per request would flood the pod logs during a demo


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--service", required=True,
                   choices=["productpage", "details", "reviews", "ratings"])
    p.add_argument("--version", default="v1")
    p.add_argument("--port", type=int, default=9080)
    a = p.parse_args()
    server = ThreadingHTTPServer(("0.0.0.0", a.port), Handler)
    server.daemon_threads = True
    server.service, server.version = a.service, a.version
    print(f"{a.service}-{a.version} listening on :{a.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
