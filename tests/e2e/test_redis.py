"""Black-box tests of the Redis store: several `tokendist serve` instances on
one Redis serve the same token; Redis going away and coming back; newest
record wins under concurrent writers; one refresher across the fleet."""
import json
import os
import random
import threading
import time
import unittest

from feishu_env import PUSH_KEY as FEISHU_PUSH, FeishuEnv
from harness import DEADLINE, TestCase, make_record
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

    def wait_token(self, servers, token, timeout=DEADLINE, path="/get-token"):
        """Polls until every server serves token; returns the seconds taken."""
        t0 = time.monotonic()
        pending = list(servers)
        while pending:
            s = pending[0]
            r = s.get(path)
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

    def test_post_to_one_is_served_by_all_via_the_publish(self):
        """A POST to one instance reaches the others through the publish:
        nothing else would bring it (they reload everything only after a
        reconnect, and there is none).  How fast is a figure for
        docs/performance.md (about 1 ms), not a bound a busy machine must
        meet; the median only has to stay far below the 5 s after which a
        silent subscription is probed."""
        servers = self.fleet(self.redis.url())
        base = int(time.time())
        took = []
        for i, tok in enumerate(tokens(6)):
            writer = servers[i % 3]
            r = writer.post("/get-token", make_record(tok, generated=base + i), key=PUSH)
            self.assertEqual(r.status, 200, r.body)
            took.append(self.wait_token(servers, tok))
        for s in servers:
            self.assertNotIn("Redis 连接断开", s.log())
            self.assertRegex(s.get("/metrics").body.decode(), r"tokendist_store_reconnects_total 0\b")
        took.sort()
        self.assertLess(took[len(took) // 2], 1.0, "propagation times: %s" % took)

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
        self.wait_token(servers, newest)
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
        self.wait_token(servers, tok)

        self.redis.kill9()
        for s in servers:
            g = s.get("/get-token")
            self.assertEqual((g.status, g.json()["access_token"]), (200, tok))
            p = s.post("/get-token", make_record(tok2, generated=rec["generated_timestamp"] + 1),
                       key=PUSH)
            self.assertEqual(p.status, 503, p.body)
            self.assertEqual(p.headers.get("retry-after"), "5")
            h = s.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH})
            self.assertEqual((h.status, h.headers.get("retry-after")), (503, "5"), h.body)
            self.assertIn("error", h.json())
            ready = s.get("/readyz")
            self.assertEqual(ready.status, 503)
            self.assertIn("degraded", ready.json()["store"])
            self.assertTrue(ready.json()["tokens"]["default"]["fresh"])

        # Back on the same port and data folder: the acknowledged write was
        # fsync'ed (appendfsync always) and is there again.
        self.redis.start()
        self.assertEqual(self.redis.cmd("SELECT", 2), "OK")
        for s in servers:
            self.wait_for(lambda: s.get("/readyz").status == 200, what="recovery of %d" % s.port)
        rec3 = make_record(tok3, generated=rec["generated_timestamp"] + 2)
        self.assertEqual(servers[2].post("/get-token", rec3, key=PUSH).status, 200)
        self.wait_token(servers, tok3)
        for s in servers:
            m = s.get("/metrics").body.decode()
            self.assertRegex(m, r"tokendist_store_reconnects_total [1-9]")
            self.assertRegex(m, r"tokendist_store_errors_total [1-9]")
            log = s.log()
            self.assertIn("Redis 连接断开", log)
            self.assertIn("Redis 已重新连接", log)
            self.assertIn("redis://***@127.0.0.1", log)
        # The password appears nowhere (tearDown scans every log for it).

    def test_changes_made_while_disconnected_are_loaded(self):
        """A change an instance never heard of (no publish reached it) is
        served once its subscription reconnects: it reloads everything.
        (The 5 s full reload may find it first -- it exists for exactly
        such writes -- so the test does not wait for its absence; the
        reconnect says in the log that it reloaded everything.)"""
        a, b = self.fleet(self.redis.url(), n=2)
        tok, tok2 = tokens(2)
        rec = make_record(tok)
        self.assertEqual(a.post("/get-token", rec, key=PUSH).status, 200)
        self.wait_token([a, b], tok)
        # Written behind the servers' backs: no PUBLISH.
        newer = make_record(tok2, generated=rec["generated_timestamp"] + 1)
        newer["expire_time"], newer["generated_time"] = "x", "y"
        self.redis.cmd("HSET", "tokendist:token:default", "json", json.dumps(newer),
                       "gen", newer["generated_timestamp"], "exp", newer["expire_timestamp"])
        self.assertGreaterEqual(self.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub"), 2)
        self.wait_token([a, b], tok2)
        for s in (a, b):
            self.wait_log(s, "Redis 已重新连接")
            self.assertIn("重新加载全部 token", s.log())

    def test_wrong_password_stops_the_start(self):
        bad = self.redis.url().replace(REDIS_PW, "not-the-password")
        self.secrets.append("not-the-password")
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", bad, "--push-key", PUSH,
                     cwd=self.tmp, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("拒绝了存储 URL 中的凭据", r.stderr)


class OneRefresherTest(FeishuEnv, RedisTestCase):
    """Two servers with Feishu credentials share Redis: the lease lets one
    fetch per cycle; when it goes, the other takes over."""

    def setUp(self):
        super().setUp()
        self.redis = SharedRedis(self.tmp)
        self.addCleanup(self.redis.close)
        # Tokens live 8 s and Feishu renews in the last 4: a cycle every ~4 s.
        self.start_feishu(ttl=8, renew_window=4)
        env = self.feishu_env(FEISHU_RENEW_WINDOW=4, TOKENDIST_PUSH_KEYS=FEISHU_PUSH)
        self.pair = [self.server(store=self.redis.url(), env=env).start() for _ in range(2)]

    def holder(self):
        """(holder, other) once exactly one has logged that it holds the lease."""
        held = [s for s in self.pair if "本实例持有租约 refresh:default" in s.log()]
        if len(held) != 1:
            return None
        return held[0], [s for s in self.pair if s is not held[0]][0]

    def served_by_both(self, token):
        return all((self.served(s) or {}).get("access_token") == token for s in self.pair)

    CYCLE_LINES = ("下次刷新", "重试:")     # every refresh cycle ends with one of these

    def assert_refreshed_only_as_holder(self, server):
        """server ran no refresh cycle before it logged holding the lease.
        Judged from the log, not from gaps between fetches (a busy machine
        stretches and shrinks them) nor from tokens minted per fetch (a push
        that times out on a busy machine is retried, and the retry gets the
        same token back)."""
        log = server.log()
        held = log.find("本实例持有租约 refresh:default")
        before = log if held < 0 else log[:held]
        for line in self.CYCLE_LINES:
            self.assertNotIn(line, before)

    def test_one_fetches_and_the_other_takes_over_on_exit(self):
        holder, other = self.wait_for(self.holder, what="a lease holder")
        self.wait_log(other, "租约 refresh:default 由其他实例持有")   # its first look may come later
        # Three cycles: each fetched once, by the holder, served by both.
        for _ in range(3):
            n = len(self.fetch_times())
            self.wait_for(lambda: len(self.fetch_times()) > n, what="next cycle")
            self.wait_for(lambda: self.served_by_both(self.feishu.current_token()),
                          what="both serving the new token")
        self.assert_refreshed_only_as_holder(other)
        self.assertNotIn("本实例持有租约 refresh:default", other.log())
        self.assertIn("下次刷新", holder.log())

        # A clean stop releases the lease (compare-and-delete): the key is
        # gone, or already the other's, the moment the holder has exited --
        # so the other takes over without waiting for the ttl to run out.
        lease = self.redis.prefix + "lease:refresh:default"
        self.assertIn(":%d:" % holder.proc.pid, self.redis.cmd("GET", lease) or "")
        self.assertEqual(holder.stop(), 0)
        self.assertNotIn(":%d:" % holder.proc.pid, self.redis.cmd("GET", lease) or "")
        self.wait_log(other, "本实例持有租约 refresh:default")
        n = len(self.fetch_times())
        self.wait_for(lambda: len(self.fetch_times()) > n, what="a fetch by the new holder")
        self.wait_for(lambda: (self.served(other) or {}).get("access_token") ==
                      self.feishu.current_token(), what="new holder serving its token")
        # The schedule line comes after every sink was pushed: wait for it.
        self.wait_log(other, "下次刷新")
        self.assert_refreshed_only_as_holder(other)

    def test_holder_killed_lease_expires_and_other_takes_over(self):
        holder, other = self.wait_for(self.holder, what="a lease holder")
        self.wait_for(lambda: self.served_by_both(self.feishu.current_token()),
                      what="both serving the first token")
        holder.kill9()
        # The key outlives its holder by at most the lease ttl (30 s, in
        # Redis's own time); then the other instance, asking every 3 s,
        # takes it over.  Waited for, not timed: a busy machine delays the
        # takeover, but no bug makes the key live longer than its ttl.
        lease = self.redis.prefix + "lease:refresh:default"
        left = self.redis.cmd("PTTL", lease)
        self.assertTrue(0 < left <= 30000, left)
        self.assertIn(":%d:" % holder.proc.pid, self.redis.cmd("GET", lease))
        self.wait_log(other, "本实例持有租约 refresh:default", timeout=30 + DEADLINE)
        n = len(self.fetch_times())
        self.wait_for(lambda: len(self.fetch_times()) > n, what="a fetch by the new holder")
        self.wait_for(lambda: (self.served(other) or {}).get("access_token") ==
                      self.feishu.current_token(), what="new holder serving its token")
        self.assert_refreshed_only_as_holder(other)


if __name__ == "__main__":
    unittest.main()
