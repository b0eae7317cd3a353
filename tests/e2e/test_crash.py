"""Crash test: pushes with the server kill -9'ed at random moments.

Every token that got a 200 must still be there after the restart, the
database must pass PRAGMA integrity_check, and GET must never serve a record
older than the last acknowledged one.
"""
import http.client
import json
import os
import random
import sqlite3
import threading
import time
import unittest

from harness import TestCase, make_record

PUSH = "pk-crash-test-0c5e7d1a9b"
TOTAL = int(os.environ.get("TOKENDIST_CRASH_PUSHES", "10000"))


class CrashTest(TestCase):
    def test_kill9_during_pushes_loses_nothing_acknowledged(self):
        self.secrets.append(PUSH)
        rng = random.Random(int(os.environ.get("TOKENDIST_CRASH_SEED", "20261128")))
        # generated_timestamp counts up, one second a push, to now: a
        # producer's clock may not run ahead of the server's (--max-clock-skew).
        base = int(time.time()) - TOTAL
        seq = 0                     # next generated_timestamp offset to push
        acked = -1                  # highest offset that got a 200
        kills = 0
        port = None
        while seq < TOTAL:
            srv = self.server(["--push-key", PUSH], port=port).start()
            port = srv.port
            # After a restart the newest acknowledged record must be served.
            if acked >= 0:
                got = srv.get("/release/get-token").json()
                self.assertGreaterEqual(got["generated_timestamp"], base + acked,
                                        "an acknowledged token was lost in a crash")
            stop = threading.Event()
            ack_lock = threading.Lock()
            state = {"acked": acked, "served_regress": None}

            def reader():
                # GET must never go backwards past an acknowledged record.
                # One keep-alive connection and a short pause between GETs,
                # so the reader samples without starving the pusher.
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                try:
                    while not stop.is_set():
                        # The floor is read before asking: a push acknowledged
                        # while this GET is in flight may or may not be in it.
                        with ack_lock:
                            floor = state["acked"]
                        try:
                            c.request("GET", "/release/get-token")
                            r = c.getresponse()
                            body = r.read()
                        except (OSError, http.client.HTTPException):
                            return
                        if r.status == 200:
                            ts = json.loads(body)["generated_timestamp"] - base
                            if ts < floor:
                                state["served_regress"] = (ts, floor)
                        time.sleep(0.002)
                finally:
                    c.close()

            t = threading.Thread(target=reader)
            t.start()
            killer = threading.Timer(rng.uniform(0.05, 1.0), srv.kill9)
            killer.start()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                while seq < TOTAL:
                    rec = make_record("t-crash%015d" % seq, generated=base + seq, ttl=86400)
                    try:
                        conn.request("POST", "/release/get-token", body=json.dumps(rec),
                                     headers={"Authorization": "Bearer " + PUSH,
                                              "Content-Type": "application/json"})
                        resp = conn.getresponse()
                        resp.read()
                        status = resp.status
                    except (OSError, http.client.HTTPException):
                        break       # killed mid-request: not acknowledged
                    self.assertEqual(status, 200)
                    # One connection per run: many pushes between kills.
                    self.assertFalse(resp.will_close, "the server closed a keep-alive connection")
                    with ack_lock:
                        state["acked"] = seq
                    seq += 1
            finally:
                killer.cancel()
                conn.close()
                srv.kill9()
                stop.set()
                t.join()
            kills += 1
            acked = state["acked"]
            self.assertIsNone(state["served_regress"], "GET served a record older than an acknowledged one")
            seq = acked + 1
        srv = self.server(["--push-key", PUSH], port=port).start()
        self.assertEqual(srv.get("/release/get-token").json()["generated_timestamp"], base + TOTAL - 1)
        srv.stop()
        db = sqlite3.connect(os.path.join(self.tmp, "var", "tokendist.db"))
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        db.close()
        # How many pushes fit between kills is the machine's speed (a busy
        # one manages few); that the connection is reused is checked above.
        self.assertGreater(kills, 1)
        print("crash test: %d acknowledged pushes, %d kill -9s, nothing lost" % (TOTAL, kills))


if __name__ == "__main__":
    unittest.main()
