"""Loading the store at the name limit and past what tokendist wrote: the
1,024-name limit decided before anything is written (also between the
processes sharing a store), rows the server cannot serve never pushing
acknowledged names out of a load, /metrics at the limit with the longest
names, parse errors that never quote the stored or posted text, and each
unreadable record logged once however often the store is reloaded.

Stores are filled by writing rows directly (what another tool, or 1,024
earlier POSTs, would have left), so a test at the limit takes seconds.
Every wait is for an event (an answer, a token served, a log line) with a
generous deadline."""
import json
import os
import sqlite3
import threading
import time
import unittest

from harness import TestCase, make_record
from redisd import SharedRedis

PUSH = "push-key-store-loading-0001"
LIMIT = 1024
TOKEN = "t-g1044ghEGNOJ5OSQF5OYATETPBq9Xk2mNw7Lc3"   # the shape of a Feishu token


def row(name, token, now):
    """A stored record as tokendist writes it: JSON text, gen, exp."""
    rec = make_record(token, generated=now)
    return name, json.dumps(rec, ensure_ascii=False), rec["generated_timestamp"], rec["expire_timestamp"]


def long_name(i):
    return ("n%05d" % i).ljust(64, "x")   # the longest name the rule allows


class Common:
    def ready(self, srv):
        return srv.get("/readyz").json()

    def race(self, srv, names):
        """POSTs a new name each, all at once; returns {name: response}."""
        answers, go = {}, threading.Barrier(len(names))

        def one(n):
            go.wait()
            answers[n] = srv.post("/v1/tokens/" + n, make_record("t-race-" + n[:6]), key=PUSH)
        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return answers

    def assert_refused_for_the_limit(self, r):
        self.assertEqual(r.status, 400, r.body)
        self.assertFalse(r.json()["success"])
        self.assertIn("token 名称已达上限 (%d 个)" % LIMIT, r.json()["message"])


class SqliteLoadingTest(Common, TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH]
        self.db_path = os.path.join(self.tmp, "var", "tokendist.db")

    def start(self, *args):
        return self.server(["--push-key", PUSH] + list(args)).start()

    def seed(self, rows):
        """Writes rows (name, json, gen, exp) into a fresh store file."""
        self.start().stop()   # the schema
        db = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            db.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", [r + (r[2],) for r in rows])
        finally:
            db.close()

    def stored_names(self):
        db = sqlite3.connect(self.db_path)
        try:
            return {r[0] for r in db.execute("SELECT name FROM tokens")}
        finally:
            db.close()

    def test_new_names_racing_for_the_last_place_one_is_stored_the_others_never_written(self):
        now = int(time.time())
        self.seed([row("n%04d" % i, "t-fill%020d" % i, now) for i in range(LIMIT - 1)])
        srv = self.start()
        racers = ["race_%02d" % i for i in range(16)]
        answers = self.race(srv, racers)
        won = [n for n, r in answers.items() if r.status == 200]
        self.assertEqual(len(won), 1, {n: (r.status, r.body[:120]) for n, r in answers.items()})
        for n, r in answers.items():
            if n not in won:
                self.assert_refused_for_the_limit(r)
        # A refusal came before anything was written; the store never
        # holds more names than the server serves.
        stored = self.stored_names()
        self.assertEqual(len(stored), LIMIT)
        self.assertEqual(stored & set(racers), set(won))
        # The acknowledged name has its place after a restart, and nothing
        # is left out.
        srv.stop()
        srv = self.start()
        self.assertEqual(srv.get("/v1/tokens/" + won[0]).status, 200)
        self.assertEqual(srv.get("/v1/tokens/n0000").status, 200)
        self.assertNotIn("未加载", srv.log())

    def test_unreadable_rows_sorting_first_push_no_acknowledged_name_out(self):
        now = int(time.time())
        good = [row("n%04d" % i, "t-good%020d" % i, now) for i in range(LIMIT)]
        # Another tool's rows, all before 'n…' in name order: names outside
        # the rule, and records that are not records.
        bad = [row("FOREIGN%d" % i, "t-foreign%016d" % i, now) for i in range(5)]
        bad += [("a_broken%d" % i, "{not json", now, now + 7200) for i in range(5)]
        self.seed(good + bad)
        srv = self.start()
        missing = [r[0] for r in good if srv.get("/v1/tokens/" + r[0]).status != 200]
        self.assertEqual(missing, [], "acknowledged names not served after the restart")
        ready = self.ready(srv)
        self.assertEqual(len(ready["tokens"]), LIMIT)
        self.assertEqual(ready["unreadable_records"], 10)
        self.assertNotIn("未加载", srv.log())

    def test_valid_names_over_the_limit_are_counted_and_the_rule_said(self):
        now = int(time.time())
        # Another writer left 3 valid names more than the server serves.
        self.seed([row("n%04d" % i, "t-name%020d" % i, now) for i in range(LIMIT + 3)])
        srv = self.start()
        log = self.wait_log(srv, "未加载")
        self.assertIn("存储中有效的 token 名称超过 %d 个：3 个未加载" % LIMIT, log)
        self.assertIn("按名称排序", log)
        # The rule: at a start, the first names in name order.
        self.assertEqual(srv.get("/v1/tokens/n%04d" % (LIMIT - 1)).status, 200)
        self.assertEqual(srv.get("/v1/tokens/n%04d" % LIMIT).status, 404)
        # A new name is refused before it is written.
        r = srv.post("/v1/tokens/brand_new", make_record(TOKEN), key=PUSH)
        self.assert_refused_for_the_limit(r)
        self.assertNotIn("brand_new", self.stored_names())

    def test_metrics_at_the_limit_with_the_longest_names(self):
        now = int(time.time())
        self.seed([row(long_name(i), "t-metric%018d" % i, now) for i in range(LIMIT)])
        srv = self.start()
        r = srv.get("/metrics")
        self.assertEqual(r.status, 200, r.body[:200])
        lines = r.body.decode().splitlines()
        for series in ("tokendist_token_expiry_seconds", "tokendist_token_renew_window_seconds"):
            named = [line for line in lines if line.startswith(series + "{name=\"")]
            self.assertEqual(len(named), LIMIT, series)
            self.assertIn('%s{name="%s"}' % (series, long_name(LIMIT - 1)), r.body.decode())
        self.assertTrue(any(line.startswith("tokendist_requests_total{") for line in lines))

    def test_a_damaged_token_never_reaches_the_log_or_readyz_through_a_parse_error(self):
        srv = self.start("--read-key", "read-key-store-loading-01")
        self.secrets.append("read-key-store-loading-01")
        secret_part = TOKEN[2:16]   # more than a fingerprint (t-g10…c3) shows
        damaged = TOKEN[:16] + "\x01" + TOKEN[17:]
        now = int(time.time())
        db = sqlite3.connect(self.db_path, isolation_level=None)
        db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                   ("broken", '{"access_token": "%s", "expire_timestamp": %d}' % (damaged, now + 7200),
                    now, now + 7200, now))
        db.close()
        ready = self.wait_for(lambda: (lambda j: j if j["unreadable_records"] == 1 else None)(self.ready(srv)),
                              what="the damaged row reported")
        problem = ready["unreadable"][0]["problem"]
        self.assertIn("控制字符", problem)
        self.assertIn("第 1 行第", problem)
        self.assertNotIn(secret_part, json.dumps(ready, ensure_ascii=False))   # /readyz answers anyone
        self.assertNotIn(secret_part, srv.log())
        # The same for a POST whose token has a bad escape: the answer and
        # the log say what and where, not the text.
        body = '{"access_token": "%s", "x": 1}' % (TOKEN[:16] + "\\q" + TOKEN[16:])
        r = srv.post("/v1/tokens/default", body, key=PUSH)
        self.assertEqual(r.status, 400)
        self.assertIn("无效的转义序列 (第 1 行第", r.json()["message"])
        self.assertNotIn(secret_part, r.body.decode())
        self.wait_log(srv, "拒绝写入 default")
        self.assertNotIn(secret_part, srv.log())


class DedupCommon(Common):
    """More unreadable records than /readyz remembers (16): each logged once,
    not again at every reload."""

    def test_each_unreadable_record_is_logged_once_across_reloads(self):
        srv = self.start()
        self.assertEqual(srv.post("/v1/tokens/good", make_record(TOKEN), key=PUSH).status, 200)
        bad = ["bad%02d" % i for i in range(24)]
        self.write_bad(bad)
        self.wait_for(lambda: self.ready(srv)["unreadable_records"] == len(bad), what="every bad record counted")
        # Two more full reloads, each seen by what only a full reload
        # brings: a record written behind the server's back.
        for probe in ("probe_one", "probe_two"):
            self.write_foreign(probe, "t-%s-000000000000000" % probe)
            self.wait_for(lambda: srv.get("/v1/tokens/" + probe).status == 200, what=probe + " served")
        lines = [line for line in srv.log().splitlines() if "无法读取" in line]
        counts = {n: sum(1 for line in lines if "token:%s:" % n in line or "name='%s'" % n in line) for n in bad}
        self.assertEqual(set(counts.values()), {1}, counts)
        ready = self.ready(srv)
        self.assertEqual(ready["unreadable_records"], len(bad))
        self.assertEqual(len(ready["unreadable"]), 16)


class SqliteDedupTest(DedupCommon, TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH]
        self.db_path = os.path.join(self.tmp, "var", "tokendist.db")

    def start(self):
        return self.server(["--push-key", PUSH]).start()

    def sql(self, st, rows):
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        try:
            db.executemany(st, rows)
        finally:
            db.close()

    def write_bad(self, names):
        now = int(time.time())
        self.sql("INSERT INTO tokens VALUES (?, '{not json', ?, ?, ?)", [(n, now, now + 7200, now) for n in names])

    def write_foreign(self, name, token):
        now = int(time.time())
        self.sql("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", [row(name, token, now) + (now,)])


class RedisLoadingTest(DedupCommon, TestCase):
    def setUp(self):
        super().setUp()
        self.redis = SharedRedis(self.tmp)
        self.addCleanup(self.redis.close)
        self.secrets += [PUSH]
        self.p = self.redis.prefix

    def start(self):
        return self.server(["--push-key", PUSH], store=self.redis.url()).start()

    def hset_all(self, rows, publish=False):
        """Writes rows (name, json, gen, exp) as tokendist's hashes in one
        command (what a fleet's earlier POSTs left), without PUBLISH."""
        script = ("for i = 1, #ARGV, 4 do\n"
                  "  redis.call('HSET', KEYS[1] .. 'token:' .. ARGV[i], 'json', ARGV[i+1], 'gen', ARGV[i+2], 'exp', ARGV[i+3])\n"
                  "  redis.call('SADD', KEYS[1] .. 'names', ARGV[i])\n"
                  "end\nreturn 1")
        args = [x for r in rows for x in r]
        self.redis.cmd("EVAL", script, 1, self.p, *args)

    def write_bad(self, names):
        now = int(time.time())
        self.hset_all([(n, "not json", now, now + 7200) for n in names])

    def write_foreign(self, name, token):
        self.hset_all([row(name, token, int(time.time()))])

    def test_unreadable_names_sorting_first_push_no_acknowledged_name_out(self):
        now = int(time.time())
        good = [row("n%04d" % i, "t-good%020d" % i, now) for i in range(LIMIT)]
        self.hset_all(good)
        self.hset_all([("a_bad%d" % i, "not json", now, now + 7200) for i in range(5)])
        self.redis.cmd("SADD", self.p + "names", "Foreign0", "Foreign1", "Foreign2")
        srv = self.start()
        missing = [r[0] for r in good if srv.get("/v1/tokens/" + r[0]).status != 200]
        self.assertEqual(missing, [], "acknowledged names not served")
        self.assertEqual(self.ready(srv)["unreadable_records"], 8)
        self.assertNotIn("未加载", srv.log())

    def test_the_limit_holds_between_servers_sharing_the_store(self):
        """The last place taken by another process (here: written without a
        PUBLISH, so this server's table does not know it yet) is refused by
        the store itself, in the script that would add the name."""
        now = int(time.time())
        self.hset_all([row("n%04d" % i, "t-fill%020d" % i, now) for i in range(LIMIT - 1)])
        srv = self.start()
        self.hset_all([row("other_server", "t-other000000000000000", now)])
        r = srv.post("/v1/tokens/this_server", make_record(TOKEN), key=PUSH)
        self.assert_refused_for_the_limit(r)
        self.assertEqual(self.redis.cmd("SCARD", self.p + "names"), LIMIT)
        self.assertEqual(self.redis.cmd("EXISTS", self.p + "token:this_server"), 0)
        # A refusal is the store at work, not a failing write.
        self.assertEqual(self.ready(srv)["store_writes"], "ok")
        self.assertEqual(srv.post("/v1/tokens/n0000", make_record(TOKEN, generated=now + 1), key=PUSH).status, 200)

    def test_a_busy_change_channel_does_not_starve_the_full_reload(self):
        """Another tool's write, without a PUBLISH, is seen by the periodic
        full reload -- also while a fleet's puts keep the channel busy."""
        srv = self.start()
        self.assertEqual(srv.post("/v1/tokens/good", make_record(TOKEN), key=PUSH).status, 200)
        stop = threading.Event()

        def busy():
            while not stop.is_set():
                self.redis.cmd("PUBLISH", "%schanged@%d" % (self.p, self.redis.db), "good")
                stop.wait(0.1)
        t = threading.Thread(target=busy)
        t.start()
        try:
            self.write_foreign("quiet", "t-quiet0000000000000000")
            self.wait_for(lambda: srv.get("/v1/tokens/quiet").status == 200,
                          what="the write without PUBLISH served while the channel is busy")
        finally:
            stop.set()
            t.join()


if __name__ == "__main__":
    unittest.main()
