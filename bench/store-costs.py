#!/usr/bin/env python3
"""What each store costs: a POST's latency (sequential, one keep-alive
connection), how long a record POSTed to one server takes to be served by a
second one on the same store, and what an idle server spends keeping up with
the others -- SQLite (two servers on one file), Redis and S3 (s3rver behind
the signature-checking proxy of the tests, tests/s3/s3d.js), in one run on
one machine.  GETs are left out: every store serves them from memory
(bench/redis-vs-sqlite.sh).

    bench/store-costs.py [POSTS]      (default 200 per store)

The S3 service here is on loopback and answers through a Node proxy that
checks every signature, so its figures are tokendist's request pattern
times a local service's latency; against COS multiply the request counts
by the round trip to the region.  A benchmark, not a test: not run in CI.
"""
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
KEY = "bench-" + os.urandom(12).hex()

subprocess.check_call(["cmake", "-S", ROOT, "-B", os.path.join(ROOT, "build-bench"), "-DCMAKE_BUILD_TYPE=Release",
                       "-DTD_TESTS=OFF"], stdout=subprocess.DEVNULL)
subprocess.check_call(["cmake", "--build", os.path.join(ROOT, "build-bench"), "-j2", "--target", "tokendist"],
                      stdout=subprocess.DEVNULL)
os.environ["TOKENDIST_BIN"] = os.path.join(ROOT, "build-bench", "tokendist")
os.environ.setdefault("TOKENDIST_S3_DEPS", os.path.join(ROOT, "build", "s3-deps"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
import harness  # noqa: E402
import redisd  # noqa: E402
import s3d  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def summary(ms):
    return "mean %6.2f  p50 %6.2f  p90 %6.2f  max %7.2f ms" % (statistics.mean(ms), pct(ms, 50), pct(ms, 90), max(ms))


def post_latency(srv, base):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    out = []
    for i in range(N):
        rec = harness.make_record("t-bench%06d%s" % (i, "q" * 20), generated=base + i, ttl=200000)
        body = json.dumps(rec)
        t0 = time.perf_counter()
        conn.request("POST", "/release/get-token", body=body,
                     headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, (r.status, srv.log())
    conn.close()
    return out


def propagation(a, b, base, rounds=20):
    """From a POST's 200 on a until b serves that token."""
    out = []
    for i in range(rounds):
        tok = "t-prop%06d%s" % (i, "p" * 20)
        assert a.post("/release/get-token", harness.make_record(tok, generated=base + i, ttl=200000), key=KEY).status == 200
        t0 = time.perf_counter()
        while True:
            r = b.get("/release/get-token")
            if r.status == 200 and r.json()["access_token"] == tok:
                break
            if time.perf_counter() - t0 > 30:
                raise SystemExit("bench: %s never served the token" % b.port)
            time.sleep(0.001)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pair(work, store, env=None):
    srvs = [harness.Server(work, ["--push-key", KEY, "--conn-per-ip", "0"], store=store, env=env) for _ in range(2)]
    for s in srvs:
        s.start()
    return srvs


def main():
    work = tempfile.mkdtemp(prefix="tokendist-bench-")
    procs = []
    try:
        now = int(time.time())
        rows = []

        sq = pair(work, "sqlite:" + os.path.join(work, "td.db"))
        procs += sq
        rows.append(("sqlite", post_latency(sq[0], now - 100000), propagation(sq[0], sq[1], now - 50000),
                     "PRAGMA data_version once a second, no I/O when nothing changed"))

        redis = redisd.RedisServer(work).start()
        rd = pair(work, redis.url())
        procs += rd
        lat = post_latency(rd[0], now - 100000)
        prop = propagation(rd[0], rd[1], now - 50000)
        c0 = int(redis.cmd("INFO", "stats").split("total_commands_processed:")[1].split()[0])
        time.sleep(10)
        c1 = int(redis.cmd("INFO", "stats").split("total_commands_processed:")[1].split()[0])
        rows.append(("redis", lat, prop, "%.1f commands/s for two idle servers (a full reload every 5 s)" % ((c1 - c0) / 10)))

        s3 = s3d.S3Service(work).start()
        env = s3.env()
        s3s = pair(work, s3.url("bench"), env=env)
        procs += s3s
        n_before = len(s3.requests())
        lat = post_latency(s3s[0], now - 100000)
        during = [q for q in s3.requests()[n_before:] if q["method"] == "PUT" or "/tokens/" in q["path"]
                  or "/history/" in q["path"]]
        print("s3: %.2f requests per POST" % (len(s3.requests()[n_before:]) / N))
        service_ms = sum(q["ms"] for q in during) / N
        prop = propagation(s3s[0], s3s[1], now - 50000)
        n0 = len(s3.requests())
        time.sleep(10)
        idle = s3.requests()[n0:]
        per_post = [q for q in s3.requests() if q["method"] == "PUT" and "/tokens/" in q["path"]]
        rows.append(("s3", lat, prop, "%.1f requests/s for two idle servers, %d%% of them 304, %.1f ms each at the service"
                     % (len(idle) / 10, 100 * sum(q["status"] == 304 for q in idle) / max(1, len(idle)),
                        statistics.mean(q["ms"] for q in idle) if idle else 0)))
        all_reqs = s3.requests()
        conns = len({q.get("conn") for q in all_reqs})
        print("POST latency (%d sequential POSTs, one keep-alive connection):" % N)
        for name, lat, _, _ in rows:
            print("  %-7s %s" % (name, summary(lat)))
        print("served by the second server after a POST's 200 (20 rounds):")
        for name, _, prop, _ in rows:
            print("  %-7s %s" % (name, summary(prop)))
        print("keeping up while idle:")
        for name, _, _, idle_txt in rows:
            print("  %-7s %s" % (name, idle_txt))
        print("s3: %d record PUTs for %d POSTs + 20 propagation rounds; requests per POST: 5 "
              "(GET record, PUT record, PUT index with the record's version, GET history, PUT history), "
              "%.1f ms of each POST spent at the service" % (len(per_post), N, service_ms))
        print("s3: %d requests in all on %d connections" % (len(all_reqs), conns))
        s3.stop()
        redis.stop()
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
