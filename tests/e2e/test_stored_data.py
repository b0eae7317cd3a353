"""What the server makes of the data in its store when it is not what
tokendist wrote: a corrupt row, a record another tool wrote into Redis, more
names than the server keeps.  One bad record must never stop a start or a
reload, never hide the other tokens, and never be reported as "out of
memory"; /readyz and /metrics say it is there.  Also the per-name history
(GET /v1/tokens/NAME/history), which shows fingerprints only."""
import json
import os
import sqlite3
import time
import unittest

from harness import TestCase, make_record
from redisd import SharedRedis

PUSH = "push-key-stored-data-0001"
READ = "read-key-stored-data-0001"
TOKEN = "t-g1044ghEGNOJ5OSQF5OYATETPB"


def normalised(token, generated, ttl=7200):
    """The record text and index columns as another writer might store them."""
    rec = make_record(token, generated=generated, ttl=ttl)
    return json.dumps(rec, ensure_ascii=False), rec["generated_timestamp"], rec["expire_timestamp"]


class Common:
    def wait_for(self, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)

    def ready(self, srv):
        return srv.get("/readyz").json()

    def gauge(self, srv, name):
        for line in srv.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        self.fail("no %s in /metrics" % name)

    def assert_no_oom(self, srv):
        self.assertNotIn("内存不足", srv.log())


class SqliteStoredDataTest(Common, TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH]
        self.db_path = os.path.join(self.tmp, "var", "tokendist.db")

    def start(self):
        return self.server(["--push-key", PUSH]).start()

    def sql(self, *statements):
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        try:
            for st, args in statements:
                db.execute(st, args)
        finally:
            db.close()

    def test_a_corrupt_row_is_skipped_at_start_and_reported(self):
        srv = self.start()
        now = int(time.time())
        for name, tok in (("default", TOKEN), ("other", "t-other0000000000000000"), ("third", "t-third000000000000000")):
            self.assertEqual(srv.post("/v1/tokens/" + name, make_record(tok, generated=now), key=PUSH).status, 200)
        srv.stop()
        self.sql(("UPDATE tokens SET json = '{not json' WHERE name = 'other'", ()),
                 ("UPDATE tokens SET json = ? WHERE name = 'third'", ('{"expire_timestamp": 1}',)),
                 ("INSERT INTO tokens VALUES ('Bad-Name', ?, ?, ?, ?)", normalised(TOKEN, now) + (now,)))
        srv = self.start()  # starts: the bad rows do not stop it
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], TOKEN)
        self.assertEqual(srv.get("/v1/tokens/other").status, 404)
        ready = self.ready(srv)
        self.assertEqual(ready["unreadable_records"], 3, ready)
        names = {u["name"]: u["problem"] for u in ready["unreadable"]}
        self.assertEqual(set(names), {"other", "third", "Bad-Name"})
        self.assertIn("不是有效的 token 记录", names["other"])
        self.assertIn("access_token", names["third"])
        self.assertIn("名称不符合规则", names["Bad-Name"])
        self.assertEqual(self.gauge(srv, "tokendist_store_unreadable_records"), 3)
        self.assertIn("name='other'", srv.log())
        self.assertIn(self.db_path, srv.log())
        self.assert_no_oom(srv)
        # A good record for a bad name heals it; the count follows.
        self.assertEqual(srv.post("/v1/tokens/other", make_record("t-healed0000000000000000", generated=now + 1),
                                  key=PUSH).status, 200)
        self.assertEqual(self.ready(srv)["unreadable_records"], 2)

    def test_a_running_server_sees_another_writer_and_skips_its_bad_rows(self):
        srv = self.start()
        now = int(time.time())
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN, generated=now), key=PUSH).status, 200)
        # Another program writes the file directly: one good row, one bad.
        good = normalised("t-fromtool00000000000000", now)
        self.sql(("INSERT INTO tokens VALUES ('tool', ?, ?, ?, ?)", good + (now,)),
                 ("INSERT INTO tokens VALUES ('broken', '[]', ?, ?, ?)", (now, now + 7200, now)))
        self.wait_for(lambda: srv.get("/v1/tokens/tool").status == 200, what="the other writer's token served")
        self.wait_for(lambda: self.ready(srv)["unreadable_records"] == 1, what="the bad row reported")
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], TOKEN)
        # The index disagreeing with the JSON is a bad record too; the token
        # served before stays in service.
        self.sql(("UPDATE tokens SET expire_ts = expire_ts + 86400 WHERE name = 'tool'", ()))
        self.wait_for(lambda: self.ready(srv)["unreadable_records"] == 2, what="the disagreeing row reported")
        self.assertEqual(srv.get("/v1/tokens/tool").json()["access_token"], "t-fromtool00000000000000")
        self.assertIn("不一致", srv.log())
        # Each problem is logged once, not at every reload.
        time.sleep(2.5)  # two more reloads' worth; what matters is the count below
        self.assertEqual(srv.log().count("name='broken'"), 1)
        self.assert_no_oom(srv)

    def test_the_1025th_name_is_refused_before_it_is_written(self):
        now = int(time.time())
        srv = self.start()
        srv.stop()
        rows = [("n%04d" % i,) + normalised("t-name%020d" % i, now) + (now,) for i in range(1024)]
        db = sqlite3.connect(self.db_path, isolation_level=None)
        db.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", rows)
        db.close()
        srv = self.start()
        self.assertEqual(srv.get("/v1/tokens/n1023").status, 200)
        r = srv.post("/v1/tokens/one_too_many", make_record(TOKEN, generated=now), key=PUSH)
        self.assertEqual(r.status, 400, r.body)
        self.assertIn("1024", r.json()["message"])
        self.assertEqual(r.json()["success"], False)
        # Nothing was written, and an existing name still takes a new record.
        self.assertEqual(self.count_rows(), 1024)
        self.assertEqual(srv.post("/v1/tokens/n0000", make_record(TOKEN, generated=now + 1), key=PUSH).status, 200)
        srv.stop()
        # A store that holds more names than that (another writer) still starts.
        self.sql(("INSERT INTO tokens VALUES ('zzz_extra', ?, ?, ?, ?)", normalised(TOKEN, now) + (now,)))
        srv = self.start()
        self.assertEqual(srv.get("/v1/tokens/n0000").json()["access_token"], TOKEN)
        self.assertIn("超过 1024 个", srv.log())
        self.assert_no_oom(srv)

    def count_rows(self):
        db = sqlite3.connect(self.db_path)
        try:
            return db.execute("SELECT count(*) FROM tokens").fetchone()[0]
        finally:
            db.close()

    def test_history_shows_fingerprints_to_the_push_key_only(self):
        srv = self.server(["--push-key", PUSH, "--read-key", READ]).start()
        now = int(time.time())
        toks = ["t-hist%020d" % i for i in range(3)]
        for i, t in enumerate(toks):
            self.assertEqual(srv.post("/release/get-token", make_record(t, generated=now + i), key=PUSH).status, 200)
        # A GET: refusals are {"error": ...} as on every GET, though the key is the writers'.
        r = srv.get("/v1/tokens/default/history")
        self.assertEqual(r.status, 401)
        self.assertEqual(list(r.json()), ["error"])
        r = srv.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + READ})
        self.assertEqual(r.status, 403)
        self.assertEqual(list(r.json()), ["error"])
        r = srv.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH})
        self.assertEqual(r.status, 200, r.body)
        body = r.body.decode()
        for t in toks:
            self.assertNotIn(t, body)  # a previous token may still be valid
        h = r.json()
        self.assertEqual(h["name"], "default")
        self.assertEqual([e["generated_timestamp"] for e in h["history"]], [now + 2, now + 1, now])
        self.assertEqual([e["current"] for e in h["history"]], [True, False, False])
        self.assertTrue(h["history"][0]["access_token_fingerprint"].startswith("t-his"))
        self.assertEqual(srv.get("/v1/tokens/nothing/history",
                                 headers={"Authorization": "Bearer " + PUSH}).json()["history"], [])
        self.assertEqual(srv.post("/v1/tokens/default/history", {}, key=PUSH).status, 405)


class RedisStoredDataTest(Common, TestCase):
    def setUp(self):
        super().setUp()
        self.redis = SharedRedis(self.tmp)
        self.addCleanup(self.redis.close)
        self.secrets += [PUSH]

    def start(self):
        return self.server(["--push-key", PUSH], store=self.redis.url()).start()

    def test_records_written_by_another_tool(self):
        p = self.redis.prefix
        now = int(time.time())
        srv = self.start()
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN, generated=now), key=PUSH).status, 200)
        good, gen, exp = normalised("t-othertool0000000000000", now)
        # Written without PUBLISH: a running server must still see it.
        self.redis.cmd("HSET", p + "token:tool", "json", good, "gen", gen, "exp", exp)
        self.redis.cmd("SADD", p + "names", "tool")
        self.wait_for(lambda: srv.get("/v1/tokens/tool").status == 200, what="another tool's record served")
        # Bad ones: no json field, JSON disagreeing with the hash's exp, a
        # key of the wrong type, a name outside the rule.
        self.redis.cmd("HSET", p + "token:nojson", "gen", gen, "exp", exp)
        self.redis.cmd("HSET", p + "token:skewed", "json", good, "gen", gen, "exp", exp + 86400)
        self.redis.cmd("SET", p + "token:str", "hello")
        self.redis.cmd("SADD", p + "names", "nojson", "skewed", "str", "Bad-Name")
        self.wait_for(lambda: self.ready(srv)["unreadable_records"] == 4, what="four unreadable records")
        self.assertEqual(srv.get("/v1/tokens/skewed").status, 404)
        self.assertEqual(srv.get("/release/get-token").json()["access_token"], TOKEN)
        # A new instance starts on the same data.
        late = self.start()
        self.assertEqual(late.get("/v1/tokens/tool").json()["access_token"], "t-othertool0000000000000")
        problems = {u["name"]: u["problem"] for u in self.ready(late)["unreadable"]}
        self.assertEqual(set(problems), {"nojson", "skewed", "str", "Bad-Name"})
        self.assertIn("json", problems["nojson"])
        self.assertIn("不一致", problems["skewed"])
        self.assertIn(p + "token:nojson", late.log())
        for s in (srv, late):
            self.assert_no_oom(s)


if __name__ == "__main__":
    unittest.main()
