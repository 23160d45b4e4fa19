#!/usr/bin/env python3
"""Load for the rotation test, run inside a meshed pod's network namespace.

Usage: rotation_load.py URL SECONDS

Two clients side by side for SECONDS, then one JSON line on stdout:
- short: a new connection per request;
- keepalive: one HTTP/1.1 connection reused for every request. When the
  proxy closes it gracefully (a drain), the next request moves to a new
  connection, as every HTTP/1.1 client does for an idempotent GET on a reused
  connection: counted in `reconnects`, not a failure. A request that fails on
  a fresh connection, or any non-200 answer, is a failure.
"""

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
stats = {"short_ok": 0, "short_failed": 0, "keepalive_ok": 0,
         "keepalive_failed": 0, "reconnects": 0, "errors": []}
lock = threading.Lock()


def note(key, error=None):
    with lock:
        stats[key] += 1
        if error and len(stats["errors"]) < 20:
            stats["errors"].append(error)


def get(conn):
    conn.request("GET", url.path or "/")
    r = conn.getresponse()
    r.read()
    return r.status


def short():
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        try:
            status = get(conn)
            note("short_ok") if status == 200 else note("short_failed", f"short: HTTP {status}")
        except Exception as e:  # noqa: BLE001 - every failure counts
            note("short_failed", f"short: {e!r}")
        finally:
            conn.close()
        time.sleep(0.05)


def keepalive():
    conn, fresh = None, True
    while time.monotonic() < deadline:
        if conn is None:
            conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
            fresh = True
        try:
            status = get(conn)
            fresh = False
            note("keepalive_ok") if status == 200 else note("keepalive_failed", f"keepalive: HTTP {status}")
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            conn.close()
            conn = None
            if fresh:
                note("keepalive_failed", f"keepalive, fresh connection: {e!r}")
            else:
                note("reconnects")
                continue  # the same request again, on a new connection
        except Exception as e:  # noqa: BLE001
            note("keepalive_failed", f"keepalive: {e!r}")
            conn.close()
            conn = None
        time.sleep(0.05)


threads = [threading.Thread(target=f) for f in (short, keepalive)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(stats))
