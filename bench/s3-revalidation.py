#!/usr/bin/env python3
"""What S3 revalidation costs as the names grow: how long a POST to one
server takes to be served by another when every request to the service
takes a 50 ms round trip (COS over the public network), and how many
requests an idle server sends -- with 40 names (50 ms away), and with
1000 names more in the index whose records are missing (on loopback) (a writer killed between the index and the
record, or another tool's names).

    TOKENDIST_BIN=build/tokendist bench/s3-revalidation.py [ROUNDS]

Uses the binary it is given (so that two builds can be compared) and the
tests' S3 service, s3rver behind tests/s3/s3d.js; the round trip is a
proxy that holds each request 50 ms before passing it on.  A benchmark,
not a test: not run in CI.
"""
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
RTT = 0.05
KEY = "bench-" + os.urandom(12).hex()
os.environ.setdefault("TOKENDIST_S3_DEPS", os.path.join(ROOT, "build", "s3-deps"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402
import s3d  # noqa: E402


class Far:
    """A proxy to s3d that holds every request RTT seconds."""

    def __init__(self, upstream):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                time.sleep(RTT)
                c = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
                c.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
                r = c.getresponse()
                out = r.read()
                self.send_response_only(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)
                c.close()

            do_GET = do_PUT = do_HEAD = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_address[1]


def serve(work, store, env):
    return harness.Server(work, ["--push-key", KEY, "--conn-per-ip", "0"], store=store, env=env).start()


def served(srv, name, tok):
    r = srv.get("/v1/tokens/" + name)
    return r.status == 200 and r.json()["access_token"] == tok


def idle_rate(s3, seconds=10):
    n0 = len(s3.requests())
    time.sleep(seconds)
    return (len(s3.requests()) - n0) / seconds


def main():
    work = tempfile.mkdtemp(prefix="tokendist-bench-")
    s3 = s3d.S3Service(work).start()
    far = Far(s3.port)
    near_url = s3.url("bench")
    far_url = "s3://%s/bench?endpoint=http://127.0.0.1:%d&path_style=1" % (s3d.BUCKET, far.port)
    env = s3.env()
    procs = []
    try:
        base = int(time.time())
        a = serve(work, near_url, env)
        procs.append(a)
        for i in range(40):
            rec = harness.make_record("t-n%02d%s" % (i, "q" * 24), generated=base, ttl=200000)
            assert a.post("/v1/tokens/n%02d" % i, rec, key=KEY).status == 200
        b = serve(work, far_url, env)
        procs.append(b)
        time.sleep(3)
        a.stop()                                     # b alone: its own requests only
        rate40 = idle_rate(s3)
        a = serve(work, near_url, env)
        procs.append(a)
        waits = {"n00": [], "n39": []}
        for r in range(ROUNDS):
            for name in ("n00", "n39"):
                tok = "t-%s-%04d%s" % (name, r, "p" * 20)
                rec = harness.make_record(tok, generated=base + 1 + r, ttl=200000)
                assert a.post("/v1/tokens/" + name, rec, key=KEY).status == 200
                t0 = time.monotonic()
                while not served(b, name, tok):
                    if time.monotonic() - t0 > 60:
                        raise SystemExit("bench: b never served " + name)
                    time.sleep(0.01)
                waits[name].append(time.monotonic() - t0)
                time.sleep(0.3)                      # a POST at another point of b's round
        a.stop()
        b.stop()
        # 1000 names in the index without a record
        index = json.loads(s3.raw("GET", "bench/index.json")[1])
        index["names"] = sorted(index["names"] + ["gone%04d" % i for i in range(1000)])
        s3.raw("PUT", "bench/index.json", json.dumps(index).encode())
        c = serve(work, near_url, env)              # no added round trip: the most it can send
        procs.append(c)
        time.sleep(3)
        rate1040 = idle_rate(s3)
        print("binary: %s" % harness.BIN)
        print("40 names, %d ms round trip, a POST to A served by B after (s), %d rounds:" % (RTT * 1000, ROUNDS))
        for name, v in waits.items():
            print("  %s: median %.2f, max %.2f  (%s)" % (name, statistics.median(v), max(v),
                                                       " ".join("%.2f" % x for x in v)))
        print("an idle reader's requests/s: 40 names, 50 ms away: %.1f; 40 names + 1000 without a record, "
              "on loopback: %.1f" % (rate40, rate1040))
    finally:
        for p in procs:
            p.stop()
        far.httpd.shutdown()
        s3.stop()


if __name__ == "__main__":
    main()
