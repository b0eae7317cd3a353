"""Black-box tests of the Redis store: several `tokendist serve` instances on
one Redis serve the same token; Redis going away and coming back; newest
record wins under concurrent writers; one refresher across the fleet."""
import json
import os
import random
import threading
import time
import unittest

from harness import TestCase, make_record
from redisd import RedisServer, SharedRedis

PUSH = "pk-redis-3b4c5d6e7f8091a2b3"
REDIS_PW = "redis-pw-0a1b2c3d4e5f6071"


def tokens(n):
    return ["t-redis%02d%s" % (i, "x" * 24) for i in range(n)]


class RedisTestCase(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH, REDIS_PW] + tokens(40)

    def fleet(self, store, n=3, args=(), env=None):
        return [self.server(["--push-key", PUSH] + list(args), store=store, env=env).start()
                for _ in range(n)]

    def wait_token(self, servers, token, timeout, path="/get-token"):
        """Polls until every server serves token; returns the seconds taken."""
        t0 = time.monotonic()
        pending = list(servers)
        while pending:
            s = pending[0]
            r = s.get(path, timeout=2)
            if r.status == 200 and r.json()["access_token"] == token:
                pending.pop(0)
                continue
            if time.monotonic() - t0 > timeout:
                self.fail("server %d still serves %s, not %s" % (
                    s.port, r.json().get("access_token", r.status), token))
            time.sleep(0.002)
        return time.monotonic() - t0


class SharedStoreTest(RedisTestCase):
    def setUp(self):
        super().setUp()
        self.redis = SharedRedis(self.tmp)
        self.addCleanup(self.redis.close)

    def test_post_to_one_is_served_by_all_within_100ms(self):
        servers = self.fleet(self.redis.url())
        base = int(time.time())
        for i, tok in enumerate(tokens(6)):
            writer = servers[i % 3]
            r = writer.post("/get-token", make_record(tok, generated=base + i), key=PUSH)
            self.assertEqual(r.status, 200, r.body)
            took = self.wait_token(servers, tok, timeout=2)
            self.assertLess(took, 0.1, "round %d: the others took %.0f ms" % (i, took * 1000))

    def test_a_new_instance_loads_what_is_stored(self):
        first, = self.fleet(self.redis.url(), n=1)
        rec = make_record(tokens(1)[0])
        self.assertEqual(first.post("/v1/tokens/alpha", rec, key=PUSH).status, 200)
        late, = self.fleet(self.redis.url(), n=1)
        self.assertEqual(late.get("/v1/tokens/alpha").json()["access_token"], tokens(1)[0])
        # The record in Redis is the one served, plus its history.
        self.assertEqual(self.redis.cmd("HGET", self.redis.prefix + "token:alpha", "gen"),
                         str(rec["generated_timestamp"]))
        self.assertEqual(self.redis.cmd("SMEMBERS", self.redis.prefix + "names"), ["alpha"])

    def test_concurrent_writers_newest_wins(self):
        """Writers race old and new records through all instances; whatever
        the interleaving, the newest is stored and served everywhere, and
        every accepted write was newer than the one before it."""
        servers = self.fleet(self.redis.url())
        base = int(time.time())
        gens = list(range(base - 30, base + 30))
        random.Random(5).shuffle(gens)
        answers = []

        def writer(chunk, srv):
            for g in chunk:
                rec = make_record("t-gen%d%s" % (g, "y" * 20), generated=g)
                answers.append((g, srv.post("/get-token", rec, key=PUSH).status))

        threads = [threading.Thread(target=writer, args=(gens[i::6], servers[i % 3]))
                   for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(answers), len(gens))
        self.assertEqual({s for _, s in answers} - {200, 409}, set(), answers)
        newest = "t-gen%d%s" % (max(gens), "y" * 20)
        self.wait_token(servers, newest, timeout=2)
        self.assertEqual(self.redis.cmd("HGET", self.redis.prefix + "token:default", "gen"),
                         str(max(gens)))
        hist = [int(e.split(" ", 1)[0])
                for e in self.redis.cmd("LRANGE", self.redis.prefix + "history:default", 0, -1)]
        self.assertEqual(hist, sorted(hist, reverse=True))
        self.assertEqual(len(set(hist)), len(hist))
        self.assertLessEqual(len(hist), 20)  # the history bound (TOKENDIST_HISTORY)
        self.assertEqual(hist[0], max(gens))


class RedisOutageTest(RedisTestCase):
    """A private Redis (with a password) that the test kills and restarts."""

    def setUp(self):
        super().setUp()
        self.redis = RedisServer(self.tmp, password=REDIS_PW).start()
        self.addCleanup(self.redis.stop)

    def test_redis_killed_and_back(self):
        servers = self.fleet(self.redis.url(db=2))
        tok, tok2, tok3 = tokens(3)
        rec = make_record(tok)
        self.assertEqual(servers[0].post("/get-token", rec, key=PUSH).status, 200)
        self.wait_token(servers, tok, timeout=2)

        self.redis.kill9()
        time.sleep(0.2)
        for s in servers:
            g = s.get("/get-token")
            self.assertEqual((g.status, g.json()["access_token"]), (200, tok))
            p = s.post("/get-token", make_record(tok2, generated=rec["generated_timestamp"] + 1),
                       key=PUSH)
            self.assertEqual(p.status, 503, p.body)
            self.assertEqual(p.headers.get("retry-after"), "5")
            ready = s.get("/readyz")
            self.assertEqual(ready.status, 503)
            self.assertIn("degraded", ready.json()["store"])
            self.assertTrue(ready.json()["tokens"]["default"]["fresh"])

        # Back on the same port and data folder: the acknowledged write was
        # fsync'ed (appendfsync always) and is there again.
        self.redis.start()
        self.assertEqual(self.redis.cmd("SELECT", 2), "OK")
        deadline = time.time() + 15
        for s in servers:
            while s.get("/readyz").status != 200:
                self.assertLess(time.time(), deadline, "no recovery:\n" + s.log())
                time.sleep(0.05)
        rec3 = make_record(tok3, generated=rec["generated_timestamp"] + 2)
        self.assertEqual(servers[2].post("/get-token", rec3, key=PUSH).status, 200)
        self.wait_token(servers, tok3, timeout=1)
        for s in servers:
            m = s.get("/metrics").body.decode()
            self.assertRegex(m, r"tokendist_store_reconnects_total [1-9]")
            self.assertRegex(m, r"tokendist_store_errors_total [1-9]")
            log = s.log()
            self.assertIn("Redis 连接断开", log)
            self.assertIn("Redis 已重新连接", log)
            self.assertIn("redis://:***@127.0.0.1", log)
        # The password appears nowhere (tearDown scans every log for it).

    def test_changes_made_while_disconnected_are_loaded(self):
        """A change an instance never heard of (no publish reached it) is
        served once its subscription reconnects: it reloads everything."""
        a, b = self.fleet(self.redis.url(), n=2)
        tok, tok2 = tokens(2)
        rec = make_record(tok)
        self.assertEqual(a.post("/get-token", rec, key=PUSH).status, 200)
        self.wait_token([a, b], tok, timeout=2)
        # Written behind the servers' backs: no PUBLISH, so no one reloads.
        newer = make_record(tok2, generated=rec["generated_timestamp"] + 1)
        newer["expire_time"], newer["generated_time"] = "x", "y"
        self.redis.cmd("HSET", "tokendist:token:default", "json", json.dumps(newer),
                       "gen", newer["generated_timestamp"], "exp", newer["expire_timestamp"])
        time.sleep(0.3)
        for s in (a, b):
            self.assertEqual(s.get("/get-token").json()["access_token"], tok)
        self.assertGreaterEqual(self.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 2)
        self.wait_token([a, b], tok2, timeout=5)

    def test_wrong_password_stops_the_start(self):
        bad = self.redis.url().replace(REDIS_PW, "not-the-password")
        self.secrets.append("not-the-password")
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", bad, "--push-key", PUSH,
                     cwd=self.tmp, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("refused the credentials", r.stderr)


if __name__ == "__main__":
    unittest.main()
