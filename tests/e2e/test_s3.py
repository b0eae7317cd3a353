"""Black-box tests of the S3 store (Tencent COS or any S3-compatible service)
against a third-party S3 implementation: s3rver behind tests/s3/s3d.js, which
verifies every request's SigV4 signature with AWS's own signer and enforces
If-Match / If-None-Match / x-cos-forbid-overwrite on PUT as S3 and COS do.

Two `serve` instances on one bucket serve what either stored; a wrong secret,
key id or region stops the start with the setting to fix; racing writers
never let an older record win; kill -9 loses nothing acknowledged; the store
going away keeps GETs served and makes POSTs 503 + Retry-After; one of two
instances with Feishu credentials fetches (the lease), and the other takes
over when the holder dies; a record another tool wrote is reported, not
fatal; /invalid on S3 is answered by the lease holder's refresher, and
elsewhere with a 503 that says why."""
import json
import os
import signal
import threading
import time
import unittest

from feishu_env import PUSH_KEY as FEISHU_PUSH, FeishuEnv
from harness import ROOT, TestCase, make_record, run_cli
from proxy import Proxy
from redisd import SharedRedis
from s3d import BUCKET, KEY_ID, S3Service

PUSH = "pk-s3-7d1e2f3a4b5c6d7e8f"
PREFIX = "tokendist"


def tok(i, tag="s3"):
    return "t-%s%04d%s" % (tag, i, "z" * 22)


class S3TestCase(TestCase):
    def setUp(self):
        super().setUp()
        self.s3 = self.start_s3()

    def start_s3(self, **kw):
        s3 = S3Service(self.tmp, **kw).start()
        self.addCleanup(s3.stop)
        self.secrets.append(s3.secret)
        if s3.token:
            self.secrets.append(s3.token)
        return s3

    def serve(self, args=(), env=None, s3=None, start=True, prefix=PREFIX, port=None):
        s3 = s3 or self.s3
        e = s3.env()
        e.update(env or {})
        srv = self.server(["--push-key", PUSH] + list(args), store=s3.url(prefix), env=e, port=port)
        return srv.start() if start else srv

    def wait_for(self, pred, timeout=20, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = pred()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out waiting for " + what)

    def serves(self, srv, token):
        r = srv.get("/release/get-token", timeout=5)
        return r.status == 200 and r.json()["access_token"] == token

    def stored(self, name="default"):
        """The record in the bucket, read past tokendist."""
        status, body = self.s3.raw("GET", "%s/tokens/%s.json" % (PREFIX, name))
        return json.loads(body) if status == 200 else None


class SharedBucketTest(S3TestCase):
    def test_a_post_to_one_is_served_by_the_other_within_the_revalidation_interval(self):
        self.secrets += [tok(i) for i in range(3)]
        a, b = self.serve(), self.serve()
        base = int(time.time())
        for i, writer, reader in ((0, a, b), (1, b, a), (2, a, b)):
            r = writer.post("/release/get-token", make_record(tok(i), generated=base + i), key=PUSH)
            self.assertEqual(r.status, 200, r.body)
            self.assertTrue(self.serves(writer, tok(i)))
            t0 = time.monotonic()
            # TOKENDIST_S3_REVALIDATE is 1 s: one interval and a request or
            # two; the deadline is generous for a loaded machine.
            self.wait_for(lambda: self.serves(reader, tok(i)), timeout=15, what="the other instance")
            print("s3: served by the other instance after %.2f s" % (time.monotonic() - t0))
        self.assertEqual(self.stored()["access_token"], tok(2))
        # Readers revalidate with conditional GETs: unchanged objects cost a
        # 304; and requests share kept connections instead of one each.
        reqs = self.s3.requests()
        self.assertTrue(any(q["method"] == "GET" and q["status"] == 304 and q["if_none_match"] for q in reqs))
        conns = len({q["conn"] for q in reqs})
        self.assertLess(conns * 3, len(reqs), "%d requests on %d connections" % (len(reqs), conns))
        # The history holds every record, newest first, as fingerprints.
        h = a.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH}).json()
        self.assertEqual([e["generated_timestamp"] for e in h["history"]], [base + 2, base + 1, base])
        self.assertTrue(h["history"][0]["current"])

    def test_a_new_instance_loads_what_is_stored_and_prefixes_are_apart(self):
        self.secrets += [tok(7), tok(8)]
        a = self.serve()
        self.assertEqual(a.post("/release/get-token", make_record(tok(7)), key=PUSH).status, 200)
        other = self.serve(prefix="elsewhere/x")
        self.assertEqual(other.post("/release/get-token", make_record(tok(8)), key=PUSH).status, 200)
        b = self.serve()
        self.assertTrue(self.serves(b, tok(7)))
        self.assertTrue(self.serves(a, tok(7)))
        self.assertEqual(self.s3.raw("GET", "elsewhere/x/tokens/default.json")[0], 200)

    def test_racing_writers_never_let_an_older_record_win(self):
        """Rounds of two records, each POSTed to another instance at once:
        whichever request lands first, the newer record is what the bucket
        keeps, the older one is 409, and both instances end up serving the
        newer.  The service delays PUTs, so reads and writes interleave."""
        s3 = self.start_s3(put_delay_ms=30)
        a, b = self.serve(s3=s3), self.serve(s3=s3)
        base = int(time.time()) - 100
        for rnd in range(12):
            old, new = base + 2 * rnd, base + 2 * rnd + 1
            self.secrets += [tok(old % 10000, "r"), tok(new % 10000, "r")]
            first, second = (a, b) if rnd % 2 else (b, a)
            out = {}

            def post(srv, gen):
                r = srv.post("/release/get-token", make_record(tok(gen % 10000, "r"), generated=gen),
                             key=PUSH, timeout=30)
                out[gen] = r.status
                out["body%d" % gen] = r.body

            ts = [threading.Thread(target=post, args=(second, old)), threading.Thread(target=post, args=(first, new))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            self.assertEqual(out[new], 200, out)
            self.assertIn(out[old], (200, 409), out)
            status, body = s3.raw("GET", "%s/tokens/default.json" % PREFIX)
            self.assertEqual(json.loads(body)["generated_timestamp"], new, "an older record won round %d" % rnd)
        for srv in (a, b):
            self.wait_for(lambda: self.serves(srv, tok((base + 23) % 10000, "r")), timeout=15, what="newest everywhere")

    def test_kill9_loses_nothing_acknowledged(self):
        base = int(time.time()) - 1000
        acked, seq, port, kills = -1, 0, None, 0
        while seq < 60:
            srv = self.serve(port=port)
            port = srv.port
            if acked >= 0:
                self.assertGreaterEqual(srv.get("/release/get-token").json()["generated_timestamp"], base + acked,
                                        "an acknowledged record was lost")
            killer = threading.Timer(0.3, srv.kill9)
            killer.start()
            try:
                while seq < 60:
                    rec = make_record(tok(seq, "k"), generated=base + seq, ttl=86400)
                    self.secrets.append(tok(seq, "k"))
                    try:
                        status = srv.post("/release/get-token", rec, key=PUSH, timeout=5).status
                    except OSError:
                        break  # killed mid-request: not acknowledged
                    self.assertEqual(status, 200)
                    acked = seq
                    seq += 1
            finally:
                killer.cancel()
                srv.kill9()
            kills += 1
            if acked >= 0:  # a write under way when killed may be stored too, never less
                self.assertGreaterEqual(self.stored()["generated_timestamp"], base + acked)
            seq = acked + 1
        self.assertGreater(kills, 1)
        self.assertEqual(self.stored()["generated_timestamp"], base + 59)


class OutageTest(S3TestCase):
    def test_store_unreachable_keeps_serving_and_refuses_writes_with_503(self):
        self.secrets += [tok(1), tok(2), tok(3)]
        a = self.serve()
        base = int(time.time())
        self.assertEqual(a.post("/release/get-token", make_record(tok(1), generated=base), key=PUSH).status, 200)
        self.s3.stop()
        self.assertTrue(self.serves(a, tok(1)))           # GET from memory
        r = a.post("/release/get-token", make_record(tok(2), generated=base + 1), key=PUSH)
        self.assertEqual(r.status, 503, r.body)
        self.assertEqual(r.headers.get("retry-after"), "5")
        self.wait_for(lambda: a.get("/readyz").status == 503, timeout=10, what="/readyz degraded")
        self.assertIn("degraded", a.get("/readyz").json()["store"])
        self.assertTrue(self.serves(a, tok(1)))
        self.s3.start()                                    # same port, same objects
        self.wait_for(lambda: a.post("/release/get-token", make_record(tok(3), generated=base + 2),
                                     key=PUSH).status == 200, timeout=15, what="writes after the store is back")
        self.assertTrue(self.serves(a, tok(3)))
        self.wait_for(lambda: a.get("/readyz").status == 200, timeout=10, what="/readyz ready again")
        self.assertIn("S3 存储", a.log())
        self.assertIn("已恢复", a.log())

    def test_changes_made_while_unreachable_are_loaded_when_back(self):
        self.secrets += [tok(4), tok(5)]
        a, b = self.serve(), self.serve()
        base = int(time.time())
        self.assertEqual(a.post("/release/get-token", make_record(tok(4), generated=base), key=PUSH).status, 200)
        self.wait_for(lambda: self.serves(b, tok(4)), timeout=15, what="b serving")
        b.proc.send_signal(19)  # SIGSTOP: b misses the change entirely
        try:
            self.assertEqual(a.post("/release/get-token", make_record(tok(5), generated=base + 1),
                                    key=PUSH).status, 200)
        finally:
            b.proc.send_signal(18)
        self.wait_for(lambda: self.serves(b, tok(5)), timeout=15, what="b catching up")


class SlowS3Proxy(Proxy):
    """Between serve and s3d, a service that is slow to write: every
    request goes on as it came, except the next PUT of one object, whose
    answer is held back after s3d applied it (`ack`: the PUT landed, its
    200 comes after our 5 s request timeout) or which is itself held back
    before it reaches s3d (`land`: the PUT lands after the timeout), or the
    next request of a method on an object whose answer waits for the test
    (`gate`: until `opened` is set).  `arrived` is set when the held
    request came in, `landed` when it reached s3d.  Its answers carry
    s3d's own Date, as a real service's do."""

    keep_date = True

    def __init__(self, upstream_port):
        super().__init__(upstream_port)
        self.rule = None                    # (path suffix, "ack" | "land" | "gate", seconds, method)
        self.landed = threading.Event()
        self.opened = threading.Event()
        self.arrived = threading.Event()
        self.start()

    def hold(self, suffix, how, seconds=None, method="PUT"):
        with self.lock:
            self.rule = (suffix, how, seconds, method)
            self.arrived.clear()
            self.landed.clear()
            self.opened.clear()

    def arrive(self, method, path):
        with self.lock:
            if not (self.rule and method == self.rule[3] and path.endswith(self.rule[0])):
                return None
            rule, self.rule = self.rule, None
            self.arrived.set()
        if rule[1] == "land":
            time.sleep(rule[2])
        return rule

    def leave(self, rule):
        if rule:
            self.landed.set()
            if rule[1] == "ack":
                time.sleep(rule[2])
            elif rule[1] == "gate":
                self.opened.wait(60)


class SlowServiceTest(S3TestCase):
    """A PUT that times out on our side (5 s) may still be applied: the
    POST must tell the client the truth, and the client's retry of the same
    record must be 200."""

    def serve_through(self):
        proxy = SlowS3Proxy(self.s3.port)
        self.addCleanup(proxy.stop)
        store = "s3://%s/%s?endpoint=http://127.0.0.1:%d&path_style=1" % (BUCKET, PREFIX, proxy.port)
        srv = self.server(["--push-key", PUSH], store=store, env=self.s3.env()).start()
        self.secrets += [tok(31), tok(32)]
        base = int(time.time())
        self.assertEqual(srv.post("/release/get-token", make_record(tok(31), generated=base), key=PUSH).status, 200)
        return proxy, srv, make_record(tok(32), generated=base + 1)

    def test_a_put_acknowledged_after_the_timeout_is_answered_200(self):
        proxy, srv, rec = self.serve_through()
        proxy.hold("/tokens/default.json", "ack", 8)
        r = srv.post("/release/get-token", rec, key=PUSH, timeout=60)
        self.assertTrue(proxy.landed.is_set())
        self.assertEqual(r.status, 200, "the record is stored, the POST said: %s" % r.body)
        self.assertTrue(self.stored()["access_token"] == tok(32), "not stored")
        self.assertTrue(self.serves(srv, tok(32)), "not served")

    def test_a_put_that_lands_later_503_then_the_retry_is_200(self):
        proxy, srv, rec = self.serve_through()
        proxy.hold("/tokens/default.json", "land", 8)
        r = srv.post("/release/get-token", rec, key=PUSH, timeout=60)
        self.assertEqual(r.status, 503, r.body)     # not known yet: it has not landed when read back
        self.assertEqual(r.headers.get("retry-after"), "5")
        self.assertIn("重发同一条记录是安全的", r.json()["message"])
        # The client's retry, while the first PUT is still on its way ...
        self.assertEqual(srv.post("/release/get-token", rec, key=PUSH, timeout=60).status, 200)
        # ... and after it landed (refused there: the retry's write came first).
        self.assertTrue(proxy.landed.wait(30))
        self.assertEqual(srv.post("/release/get-token", rec, key=PUSH, timeout=60).status, 200)
        self.assertTrue(self.stored()["access_token"] == tok(32), "not stored")
        self.assertTrue(self.serves(srv, tok(32)), "not served")


    def test_a_record_whose_history_write_was_lost_gets_it_from_the_resend(self):
        """kill -9 between the record's PUT and the history's: the POST is
        unanswered, the record stored; the client's retry is an exact
        re-send (200) and must give the record its place in the history
        (the same gap as a record PUT acknowledged after our timeout and
        read back too late)."""
        proxy, srv, rec = self.serve_through()
        proxy.hold("/history/default.json", "land", 20, method="GET")   # the history's read, before its write
        threading.Thread(target=lambda: self.post_quietly(srv, rec), daemon=True).start()
        self.assertTrue(proxy.arrived.wait(30), "the history was never read")
        srv.kill9()
        self.assertEqual(self.stored()["access_token"], tok(32))          # stored, not in the history yet
        again = self.serve()                                               # a new instance, straight to s3d
        self.assertEqual(again.post("/release/get-token", rec, key=PUSH, timeout=60).status, 200)
        h = again.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH}).json()
        self.assertEqual([e["generated_timestamp"] for e in h["history"]], [rec["generated_timestamp"],
                                                                        rec["generated_timestamp"] - 1])
        # A second re-send finds it there: the history is not written twice.
        self.assertEqual(again.post("/release/get-token", rec, key=PUSH, timeout=60).status, 200)
        h = again.get("/v1/tokens/default/history", headers={"Authorization": "Bearer " + PUSH}).json()
        self.assertEqual(len(h["history"]), 2)

    @staticmethod
    def post_quietly(srv, rec):
        try:
            srv.post("/release/get-token", rec, key=PUSH, timeout=60)
        except OSError:
            pass  # killed mid-request
class FreezeTest(FeishuEnv, S3TestCase):
    """A freeze (SCF between invocations; SIGSTOP here) that lands while a
    request to the service is out is no outage: libcurl counts the frozen
    time against its 5 s timeout and gives up on an answer that is waiting
    in the socket.  Such a request is asked again at once, instead of being
    logged as an outage and its end, counted in
    tokendist_store_reconnects_total, and -- a lease renewal -- costing the
    refresh round (adversary finding 5)."""

    FROZEN = 6      # s: longer than the request's 5 s timeout

    def test_a_request_out_during_a_freeze_is_asked_again_not_an_outage(self):
        self.start_feishu(ttl=7200)
        proxy = SlowS3Proxy(self.s3.port)
        self.addCleanup(proxy.stop)
        store = "s3://%s/%s?endpoint=http://127.0.0.1:%d&path_style=1" % (BUCKET, PREFIX, proxy.port)
        env = dict(self.feishu_env(FEISHU_CHAT_ID=""), **self.s3.env())
        srv = self.server(["--push-key", PUSH], store=store, env=env).start()
        self.wait_for(lambda: self.served(srv), what="the first token")
        # The watcher's revalidation (every second), then the keeper's
        # lease renewal (every 10 s): each one's answer waits at the proxy
        # while the process is frozen, and reaches it only after the thaw.
        for what in ("/index.json", "/leases/refresh-default.json"):
            proxy.hold(what, "gate", method="GET")
            self.assertTrue(proxy.landed.wait(30), "no GET of " + what)
            srv.proc.send_signal(signal.SIGSTOP)
            try:
                proxy.opened.set()
                time.sleep(self.FROZEN)
            finally:
                srv.proc.send_signal(signal.SIGCONT)
            n = proxy.answered
            self.wait_for(lambda: proxy.answered >= n + 3, what="requests after the thaw")
        log = srv.log()
        for line in ("暂不可用", "已恢复", "无法获取租约", "无法确认刷新租约"):
            self.assertNotIn(line, log)
        metrics = srv.get("/metrics").body.decode()
        self.assertIn("tokendist_store_reconnects_total 0", metrics)
        self.assertEqual(srv.get("/readyz").json()["store"], "ok")


class StopTest(FeishuEnv, S3TestCase):
    """A clean stop (SIGTERM) during a refresh: a store write under way is
    finished, not cut between its index PUT and its record PUT (adversary
    finding 6)."""

    def test_a_sigterm_during_the_first_refresh_leaves_no_half_write(self):
        self.start_feishu(ttl=7200)
        proxy = SlowS3Proxy(self.s3.port)
        self.addCleanup(proxy.stop)
        store = "s3://%s/%s?endpoint=http://127.0.0.1:%d&path_style=1" % (BUCKET, PREFIX, proxy.port)
        # The first refresh's index PUT is applied, its answer 3 s late:
        # the stop comes in between.
        proxy.hold("/index.json", "ack", 3)
        env = dict(self.feishu_env(FEISHU_CHAT_ID=""), **self.s3.env())
        srv = self.server(["--push-key", PUSH], store=store, env=env).start()
        self.assertTrue(proxy.landed.wait(30), "no index PUT")
        srv.stop()
        index = self.s3.raw("GET", PREFIX + "/index.json")
        self.assertEqual(index[0], 200)
        self.assertEqual(json.loads(index[1])["names"], ["default"])
        self.assertIsNotNone(self.stored(), "the index names a record the stop kept from being written:\n" + srv.log())


class ResendTest(S3TestCase):
    """An exact re-send of the stored record is 200 on every store (a
    client's retry after a 503 or a lost answer); another record with the
    same generated_timestamp, or an older one, is 409 (docs/protocol.md)."""

    def test_every_store_agrees(self):
        redis = SharedRedis(self.tmp)
        self.addCleanup(redis.close)
        stores = {"sqlite": "sqlite:" + os.path.join(self.tmp, "resend.db"), "memory": "memory:",
                  "redis": redis.url(), "s3": self.s3.url("resend")}
        base = int(time.time())
        rec = make_record(tok(41), generated=base)
        self.secrets += [tok(41), tok(42), tok(43)]
        for kind, store in stores.items():
            srv = self.server(["--push-key", PUSH], store=store, env=self.s3.env()).start()
            post = lambda body: srv.post("/release/get-token", body, key=PUSH, timeout=30)
            self.assertEqual(post(rec).status, 200, kind)
            self.assertEqual(post(rec).status, 200, "%s: an exact re-send" % kind)
            self.assertEqual(post(json.dumps(rec)).status, 200, "%s: the same bytes again" % kind)
            self.assertEqual(post(make_record(tok(42), generated=base)).status, 409, "%s: same time, other token" % kind)
            self.assertEqual(post(make_record(tok(43), generated=base - 1)).status, 409, "%s: older" % kind)
            self.assertTrue(self.serves(srv, tok(41)), kind)
            srv.stop()


class CredentialsTest(S3TestCase):
    def start_fails(self, env, *needles, store=None, code=1):
        e = self.s3.env()
        e.update(env)
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", store or self.s3.url(), "--push-key", PUSH,
                     env=e, cwd=self.tmp, timeout=30)
        self.assertEqual(r.returncode, code, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        return r.stderr

    def test_a_wrong_secret_stops_the_start_naming_the_setting(self):
        wrong = "wrong-secret-" + "9" * 20
        self.secrets.append(wrong)
        self.start_fails({"AWS_SECRET_ACCESS_KEY": wrong}, "SignatureDoesNotMatch", "AWS_SECRET_ACCESS_KEY",
                         "无法打开存储")

    def test_a_wrong_key_id_or_region_or_no_credentials(self):
        self.start_fails({"AWS_ACCESS_KEY_ID": "AKIDnotthere"}, "InvalidAccessKeyId", "AWS_ACCESS_KEY_ID")
        self.start_fails({"TOKENDIST_S3_REGION": "ap-beijing"}, "TOKENDIST_S3_REGION", "ap-beijing")
        self.start_fails({"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, "AWS_ACCESS_KEY_ID",
                         "TENCENTCLOUD_SECRETID")
        self.start_fails({}, "TOKENDIST_S3_ENDPOINT", store="s3://%s/x" % BUCKET, code=2)  # a setting
        self.start_fails({}, "NoSuchBucket", store=self.s3.url().replace(BUCKET, "no-such-bucket-1"))

    def test_region_setting_and_url_parameter_the_url_wins(self):
        e = self.s3.env()
        del e["TOKENDIST_S3_REGION"]
        r = run_cli("serve", "--print-config", "--store", self.s3.url(), env=dict(e, TOKENDIST_S3_REGION="eu-west-1"))
        self.assertIn("region=eu-west-1", r.stdout)
        self.assertNotIn(self.s3.secret, r.stdout + r.stderr)
        # ?region= in the URL wins over the setting: the start succeeds.
        srv = self.server(["--push-key", PUSH], store=self.s3.url() + "&region=ap-guangzhou",
                          env=dict(e, TOKENDIST_S3_REGION="eu-west-1"))
        srv.start()


class SessionTokenTest(S3TestCase):
    def setUp(self):
        TestCase.setUp(self)
        self.s3 = self.start_s3(token="sess-" + "t0k" * 30)

    def test_temporary_credentials_signed_and_checked(self):
        self.secrets.append(tok(9))
        srv = self.serve()
        self.assertEqual(srv.post("/release/get-token", make_record(tok(9)), key=PUSH).status, 200)
        self.assertIn("临时会话令牌", srv.log())
        wrong = "sess-wrong-" + "x" * 30
        self.secrets.append(wrong)
        r = self.cli("serve", "--listen", "127.0.0.1:0", "--store", self.s3.url(), "--push-key", PUSH,
                     env=dict(self.s3.env(), AWS_SESSION_TOKEN=wrong), cwd=self.tmp, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("AWS_SESSION_TOKEN", r.stderr)

    def test_scf_role_credentials(self):
        """What SCF injects for a function with a role: TENCENTCLOUD_*."""
        self.secrets.append(tok(10))
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
               "TENCENTCLOUD_SECRETID": KEY_ID, "TENCENTCLOUD_SECRETKEY": self.s3.secret,
               "TENCENTCLOUD_SESSIONTOKEN": self.s3.token}
        srv = self.serve(env=env)
        self.assertEqual(srv.post("/release/get-token", make_record(tok(10)), key=PUSH).status, 200)
        self.assertIn("TENCENTCLOUD_SECRETID", srv.log())


class ExpiringCredentialsTest(S3TestCase):
    """Temporary credentials expire (an STS session, SCF's role): the
    refusal is said once and in words, /readyz shows it, GETs go on from
    memory, and nothing secret is logged.  Fresh credentials are taken up
    without a restart where a running process can be handed them: the file
    TOKENDIST_S3_CREDENTIALS_FILE names."""

    def setUp(self):
        TestCase.setUp(self)
        self.s3 = self.start_s3(token="sess-A-" + "a1" * 24)
        self.secrets += [tok(51), tok(52), tok(53)]

    def expire(self):
        """STS hands out a new set; the one in use expires."""
        new = ("AKIDtokendistTEST0000002", "s3secret-B-" + "b2" * 16, "sess-B-" + "b3" * 24)
        self.secrets += list(new[1:])
        self.s3.rotate(*new)
        return new

    def write_creds(self, path, key_id, secret, token, prefix="AWS"):
        names = {"AWS": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
                 "TENCENTCLOUD": ("TENCENTCLOUD_SECRETID", "TENCENTCLOUD_SECRETKEY", "TENCENTCLOUD_SESSIONTOKEN")}[prefix]
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("# written by the STS sidecar\n%s=%s\n%s=%s\n%s=%s\n" % (
                names[0], key_id, names[1], secret, names[2], token))
        os.chmod(path + ".tmp", 0o600)
        os.replace(path + ".tmp", path)

    def refused(self):
        return sum(1 for q in self.s3.requests() if q["status"] == 400)

    def assert_expiry_said(self, srv, *words):
        """The refusal as a POST, /readyz and the log say it, once."""
        self.wait_log(srv, "ExpiredToken")
        seen = self.refused()
        r = srv.post("/release/get-token", make_record(tok(52), generated=int(time.time()) + 1), key=PUSH, timeout=30)
        self.assertEqual(r.status, 500, r.body)
        for w in ("ExpiredToken", "过期") + words:
            self.assertIn(w, r.json()["message"])
        ready = srv.get("/readyz")
        self.assertEqual(ready.status, 503)
        self.assertIn("ExpiredToken", ready.json()["store"])
        self.assertIn("ExpiredToken", ready.json()["store_writes"])
        self.assertTrue(self.serves(srv, tok(51)), "GETs go on from memory")
        # The watcher keeps asking (refused each time): still one line.
        self.wait_for(lambda: self.refused() >= seen + 3, what="more refused requests")
        self.assertEqual(srv.log().count("拒绝了请求"), 1, srv.log())

    def test_a_credentials_file_is_read_again_and_fresh_ones_taken_up(self):
        path = os.path.join(self.tmp, "s3-credentials")
        self.write_creds(path, self.s3.key_id, self.s3.secret, self.s3.token)
        srv = self.serve(env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                              "TOKENDIST_S3_CREDENTIALS_FILE": path})
        self.assertIn(path, srv.log())
        self.assertEqual(srv.post("/release/get-token", make_record(tok(51)), key=PUSH).status, 200)
        new = self.expire()
        self.assert_expiry_said(srv, "AWS_SESSION_TOKEN", path)
        # The sidecar writes the new set: taken up, without a restart.
        self.write_creds(path, *new)
        self.wait_log(srv, "已恢复")
        self.assertIn("凭证已更新", srv.log())
        r = srv.post("/release/get-token", make_record(tok(53), generated=int(time.time()) + 2), key=PUSH)
        self.assertEqual(r.status, 200, r.body)
        self.wait_for(lambda: srv.get("/readyz").status == 200, what="/readyz ready again")
        self.assertEqual(srv.get("/readyz").json()["store_writes"], "ok")
        self.assertTrue(self.serves(srv, tok(53)))

    def test_readyz_says_the_whole_reason_once(self):
        """The refusal's sentence names the store and the setting to fix;
        /readyz and the POST show it whole, cut on no character, and name
        the bucket and endpoint once.  A long credentials file path (here
        in Chinese, 3 bytes a character) used to be cut off, mid-character,
        which dropped "store" from the JSON altogether."""
        folder = os.path.join(self.tmp, "临时密钥" * 14, "由续期程序写入" * 8)
        os.makedirs(folder)
        path = os.path.join(folder, "s3-credentials")
        self.assertGreater(len(path.encode()), 350)
        self.write_creds(path, self.s3.key_id, self.s3.secret, self.s3.token)
        srv = self.serve(env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
                              "TOKENDIST_S3_CREDENTIALS_FILE": path})
        self.assertEqual(srv.post("/release/get-token", make_record(tok(51)), key=PUSH).status, 200)
        self.expire()
        self.wait_log(srv, "ExpiredToken")
        self.wait_for(lambda: srv.get("/readyz").status == 503, what="/readyz degraded")
        ready = srv.get("/readyz").json()
        self.assertIn("store", ready)
        for word in ("degraded", "ExpiredToken", "AWS_SESSION_TOKEN", path, "写入被拒绝"):
            self.assertIn(word, ready["store"])
        self.assertEqual(ready["store"].count(BUCKET), 1, ready["store"])
        r = srv.post("/release/get-token", make_record(tok(52), generated=int(time.time()) + 1), key=PUSH, timeout=30)
        self.assertEqual(r.status, 500, r.body)
        self.assertIn(path, r.json()["message"])
        ready = srv.get("/readyz").json()
        self.assertIn(path, ready["store_writes"])
        self.assertEqual(ready["store_writes"].count(BUCKET), 1, ready["store_writes"])

    def test_role_credentials_from_the_environment_expire_with_a_clear_word(self):
        """SCF's role: TENCENTCLOUD_* in the environment, which no running
        process sees renewed: the words say what renews them."""
        env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
               "TENCENTCLOUD_SECRETID": self.s3.key_id, "TENCENTCLOUD_SECRETKEY": self.s3.secret,
               "TENCENTCLOUD_SESSIONTOKEN": self.s3.token}
        srv = self.serve(env=env)
        self.assertEqual(srv.post("/release/get-token", make_record(tok(51)), key=PUSH).status, 200)
        self.expire()
        self.assert_expiry_said(srv, "TENCENTCLOUD_SESSIONTOKEN", "新实例")


class ForeignDataTest(S3TestCase):
    def test_a_record_another_tool_wrote_is_reported_not_fatal(self):
        self.secrets.append(tok(11))
        self.s3.raw("PUT", PREFIX + "/index.json", b'{"names": ["default", "other", "Bad Name"]}')
        self.s3.raw("PUT", PREFIX + "/tokens/other.json", b"{not json")
        self.s3.raw("PUT", PREFIX + "/tokens/default.json", json.dumps(make_record(tok(11))).encode())
        srv = self.serve()
        self.assertTrue(self.serves(srv, tok(11)))
        ready = srv.get("/readyz").json()
        self.assertEqual(ready["unreadable_records"], 2, ready)
        problems = {u["name"]: u["problem"] for u in ready["unreadable"]}
        self.assertIn("不是 JSON", problems["other"])
        self.assertNotIn("near", problems["other"])   # what and where, never the object's text
        self.assertIn("存储桶 %s 对象 %s/tokens/other.json" % (BUCKET, PREFIX), srv.log())
        # Written while running: seen by the revalidation, reported, the
        # token in memory stays served.
        self.s3.raw("PUT", PREFIX + "/tokens/default.json", b'{"access_token": 5}')
        self.wait_for(lambda: srv.get("/readyz").json()["unreadable_records"] == 3, timeout=15,
                      what="the spoiled record reported")
        self.assertTrue(self.serves(srv, tok(11)))
        # A POST replaces the spoiled object.
        rec = make_record(tok(12))
        self.secrets.append(tok(12))
        self.assertEqual(srv.post("/release/get-token", rec, key=PUSH).status, 200)
        self.assertEqual(self.stored()["access_token"], tok(12))

    def test_a_spoiled_index_is_rebuilt_by_the_next_write(self):
        self.secrets.append(tok(13))
        self.s3.raw("PUT", PREFIX + "/index.json", b"[1, 2")
        srv = self.serve()
        self.assertIn("索引", srv.log())
        self.assertEqual(srv.post("/release/get-token", make_record(tok(13)), key=PUSH).status, 200)
        self.assertEqual(self.index_names(), ["default"])
        self.assertTrue(self.serves(self.serve(), tok(13)))

    def index_names(self):
        status, body = self.s3.raw("GET", PREFIX + "/index.json")
        return json.loads(body)["names"] if status == 200 else None

    def post_names(self, srv, names, base):
        for i, name in enumerate(names):
            self.secrets.append(tok(60 + i))
            r = srv.post("/v1/tokens/" + name, make_record(tok(60 + i), generated=base), key=PUSH)
            self.assertEqual(r.status, 200, r.body)

    def test_a_spoiled_index_loses_no_name(self):
        """Another tool spoils index.json: a cold start (an SCF instance
        that knows nothing) still serves every name whose record is in the
        bucket, and the write it gets rebuilds the index with all of them,
        not only the name written (the backup, index.backup.json)."""
        base = int(time.time())
        a = self.serve()
        self.post_names(a, ["default", "other", "third"], base)
        self.s3.raw("PUT", PREFIX + "/index.json", b"[1, 2")
        cold = self.serve()
        for i, name in enumerate(["default", "other", "third"]):
            r = cold.get("/v1/tokens/" + name)
            self.assertEqual(r.status, 200, "%s: %s" % (name, r.body))
            self.assertEqual(r.json()["access_token"], tok(60 + i))
        self.assertIn("index.backup.json", cold.log())
        self.secrets.append(tok(70))
        self.assertEqual(cold.post("/release/get-token", make_record(tok(70), generated=base + 1), key=PUSH).status, 200)
        self.assertEqual(self.index_names(), ["default", "other", "third"])
        self.assertIn("索引已重建", cold.log())
        self.assertEqual(self.serve().get("/v1/tokens/other").json()["access_token"], tok(61))

    def backup_names(self):
        status, body = self.s3.raw("GET", PREFIX + "/index.backup.json")
        return json.loads(body)["names"] if status == 200 else None

    def test_a_cleanup_of_junk_names_sticks(self):
        """Another tool wrote 40 junk names into index.json; the operator
        rewrites it with the real names and deletes index.backup.json, as
        the INDEX_MAX message says.  A running instance that read the junk
        (and found no record for it) puts none of it back into the index
        at its next write, and writes the backup again without it once its
        sweep comes to the backup (names + 1 places, 4 a round)."""
        base = int(time.time())
        junk = ["junk%04d" % i for i in range(40)]
        self.s3.raw("PUT", PREFIX + "/index.json", json.dumps({"names": ["default"] + junk}).encode())
        a = self.serve()
        self.secrets.append(tok(73))
        self.assertEqual(a.post("/release/get-token", make_record(tok(73), generated=base), key=PUSH).status, 200)
        self.s3.raw("PUT", PREFIX + "/index.json", json.dumps({"names": ["default"]}).encode())
        self.s3.raw("DELETE", PREFIX + "/index.backup.json")
        mark = len(self.s3.requests())   # the back door is not logged
        # Wait until a has read the cleaned index (a 200 to its conditional GET).
        self.wait_for(lambda: any(q["method"] == "GET" and q["path"].endswith("/index.json") and q["status"] == 200
                                  for q in self.s3.requests()[mark:]), what="the cleaned index read")
        self.secrets.append(tok(74))
        self.assertEqual(a.post("/release/get-token", make_record(tok(74), generated=base + 1), key=PUSH).status, 200)
        self.assertEqual(self.index_names(), ["default"])
        self.wait_for(lambda: self.backup_names() is not None, timeout=30, what="the backup written again")
        self.assertEqual(self.backup_names(), ["default"])

    def test_a_lost_backup_is_written_again(self):
        """index.backup.json disappears (a lifecycle rule, a migration that
        copied only index.json and tokens/): a running instance writes it
        again, so a later spoiled index still loses no name."""
        base = int(time.time())
        a = self.serve()
        self.post_names(a, ["default", "other", "third"], base)
        self.assertEqual(self.backup_names(), ["default", "other", "third"])
        self.s3.raw("DELETE", PREFIX + "/index.backup.json")
        for k in range(1, 4):
            self.secrets.append(tok(74 + k))
            r = a.post("/release/get-token", make_record(tok(74 + k), generated=base + k), key=PUSH)
            self.assertEqual(r.status, 200, r.body)
        self.wait_for(lambda: self.backup_names() == ["default", "other", "third"], timeout=30,
                      what="the backup written again")
        self.s3.raw("PUT", PREFIX + "/index.json", b"[1, 2")
        cold = self.serve()
        for name in ["default", "other", "third"]:
            self.assertEqual(cold.get("/v1/tokens/" + name).status, 200, name)

    def test_one_oversized_object_is_one_unreadable_record(self):
        """A 2 MB object as tokens/other.json (another tool's) is one
        unreadable record, like one that is not JSON: the other names go on
        being revalidated, it is said once, a cold start succeeds, and it
        is not downloaded again every round."""
        base = int(time.time())
        a, b = self.serve(), self.serve()
        self.post_names(a, ["default", "other"], base)
        self.wait_for(lambda: b.get("/v1/tokens/other").status == 200, what="b serving other")
        mark = len(self.s3.requests())
        self.s3.raw("PUT", PREFIX + "/tokens/other.json", b'{"junk": "' + b"x" * (2 << 20) + b'"}')
        self.secrets.append(tok(71))
        self.assertEqual(b.post("/release/get-token", make_record(tok(71), generated=base + 1), key=PUSH).status, 200)
        self.wait_for(lambda: self.serves(a, tok(71)), timeout=15, what="a serving b's new record")
        self.wait_for(lambda: a.get("/readyz").json()["unreadable_records"] == 1, timeout=15, what="other unreadable")
        ready = a.get("/readyz").json()
        self.assertTrue(ready["ready"])
        self.assertEqual(ready["unreadable"][0]["name"], "other")
        self.assertIn("大于 1048576 字节", ready["unreadable"][0]["problem"])
        cold = self.serve()
        self.assertTrue(self.serves(cold, tok(71)))
        self.assertEqual(cold.get("/readyz").json()["unreadable_records"], 1)
        # Read again conditionally (304), not downloaded at every round.
        junk = lambda: [q for q in self.s3.requests()[mark:] if q["path"].endswith("/tokens/other.json")]
        self.wait_for(lambda: sum(q["status"] == 304 for q in junk()) >= 6, timeout=30, what="conditional reads")
        self.assertLessEqual(sum(q["status"] == 200 for q in junk()), 6, junk())
        for srv in (a, b, cold):
            self.assertEqual(srv.log().count("对象大于"), 1, srv.log())

    def test_an_oversized_index_stops_neither_starts_nor_new_names(self):
        base = int(time.time())
        a = self.serve()
        self.post_names(a, ["default", "other"], base)
        a.stop()
        self.s3.raw("PUT", PREFIX + "/index.json",
                    json.dumps({"names": ["default"], "pad": "x" * (300 << 10)}).encode())
        b = self.serve()                                     # the start goes on
        self.assertIn("大于 256 KiB", b.log())
        self.assertEqual(b.get("/v1/tokens/other").json()["access_token"], tok(61))
        self.secrets.append(tok(72))
        r = b.post("/v1/tokens/third", make_record(tok(72), generated=base), key=PUSH)
        self.assertEqual(r.status, 200, r.body)              # a new name: the index is rebuilt
        self.assertEqual(self.index_names(), ["default", "other", "third"])
        self.assertEqual(self.serve().get("/v1/tokens/third").json()["access_token"], tok(72))

    def test_messages_name_the_object_with_its_prefix(self):
        """With prefix prod/a every message names prod/a/..., the key the
        COS console shows, never BUCKET/tokens/... (another deployment's
        object, or none)."""
        a = self.serve(prefix="prod/a")
        self.post_names(a, ["other"], int(time.time()))
        self.s3.raw("PUT", "prod/a/tokens/other.json", b'{"junk": "' + b"x" * (2 << 20) + b'"}')
        self.s3.raw("PUT", "prod/a/history/other.json", b'"not an array"')
        r = a.get("/v1/tokens/other/history", headers={"Authorization": "Bearer " + PUSH})
        self.assertEqual(r.status, 500)
        self.assertIn("prod/a/history/other.json", r.json()["error"])
        b = self.serve(prefix="prod/a")
        self.assertIn("对象 prod/a/tokens/other.json: 对象大于", b.log())
        self.wait_log(a, "prod/a/tokens/other.json")


class ConditionalWritesIgnoredTest(S3TestCase):
    def setUp(self):
        TestCase.setUp(self)
        self.s3 = self.start_s3(conditional=False)

    def test_a_service_ignoring_conditional_writes_is_found_out_and_said(self):
        srv = self.serve()
        self.assertIn("不遵守条件写入 (更新的 If-Match 被忽略，创建的 If-None-Match/x-cos-forbid-overwrite 被忽略)",
                      srv.log())
        self.assertIn("docs/deploy-scf.md", srv.log())
        # /readyz says so too, for as long as the instance runs (on SCF
        # nobody reads a cold start's log line); the store works: ready.
        r = srv.get("/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["store"], "ok")
        self.assertIn("不遵守条件写入", r.json()["store_warning"])
        self.assertIn("请只让一个实例写入", r.json()["store_warning"])
        # Still put-if-newer for one writer.
        self.secrets += [tok(20), tok(21)]
        base = int(time.time())
        self.assertEqual(srv.post("/release/get-token", make_record(tok(21), generated=base), key=PUSH).status, 200)
        self.assertEqual(srv.post("/release/get-token", make_record(tok(20), generated=base - 1), key=PUSH).status, 409)

    def test_cos_honouring_only_its_forbid_overwrite_header(self):
        s3 = self.start_s3(conditional="cos")
        srv = self.serve(s3=s3)
        self.assertIn("更新的 If-Match 被忽略，创建的 If-None-Match/x-cos-forbid-overwrite 遵守", srv.log())
        s3.stop()
        self.assertIn("store_warning", srv.get("/readyz").json())
        strict = self.serve(s3=self.start_s3())  # as S3: no warning
        self.assertNotIn("不遵守条件写入", strict.log())
        self.assertNotIn("store_warning", strict.get("/readyz").json())


class RevalidationTest(S3TestCase):
    def test_a_round_costs_the_same_whatever_the_names(self):
        """A round of revalidation reads the index (a 304 when nothing
        changed) and only the records whose version in it moved, plus a few
        in turn -- not 1 + N GETs, which with 40 names and a 50 ms round
        trip to COS took seconds; and a name without a record is not
        fetched every round."""
        base = int(time.time())
        a = self.serve()
        for i in range(40):
            self.secrets.append(tok(100 + i))
            r = a.post("/v1/tokens/n%02d" % i, make_record(tok(100 + i), generated=base), key=PUSH)
            self.assertEqual(r.status, 200, r.body)
        a.stop()
        # 200 names whose record never came (a writer killed after the
        # index, or another tool's)
        index = json.loads(self.s3.raw("GET", PREFIX + "/index.json")[1])
        index["names"] = sorted(index["names"] + ["gone%03d" % i for i in range(200)])
        self.s3.raw("PUT", PREFIX + "/index.json", json.dumps(index).encode())
        b = self.serve()
        self.assertTrue(self.serves_name(b, "n39", tok(139)))
        mark = len(self.s3.requests())

        def index_reads():
            reqs = self.s3.requests()[mark:]
            return reqs, [i for i, q in enumerate(reqs) if q["method"] == "GET" and q["path"].endswith("/index.json")]

        self.wait_for(lambda: len(index_reads()[1]) >= 8, timeout=60, what="eight rounds")
        reqs, at = index_reads()
        for k in range(1, len(at) - 1):    # whole rounds
            records = [q for q in reqs[at[k]:at[k + 1]] if "/tokens/" in q["path"]]
            self.assertLessEqual(len(records), 4, "round %d read %d records" % (k, len(records)))
        # And a change still arrives within the interval and a round.
        self.secrets.append(tok(140))
        a2 = self.serve()
        self.assertEqual(a2.post("/v1/tokens/n39", make_record(tok(140), generated=base + 1), key=PUSH).status, 200)
        t0 = time.monotonic()
        self.wait_for(lambda: self.serves_name(b, "n39", tok(140)), timeout=15, what="b serving the change")
        print("s3: 240 names, a change served by the other instance after %.2f s" % (time.monotonic() - t0))

    def serves_name(self, srv, name, token):
        r = srv.get("/v1/tokens/" + name, timeout=5)
        return r.status == 200 and r.json()["access_token"] == token


class InvalidWithoutCredentialsTest(S3TestCase):
    """/invalid to a function without Feishu credentials on a bucket where
    no instance holds the lease: nobody refreshes the token, now or later
    -- 501 without Retry-After (docs/protocol.md), and docs/deploy-scf.md
    says the same (it promised a 503, which a client retries forever)."""

    def test_nobody_refreshes_is_501_and_the_deploy_guide_says_so(self):
        self.secrets.append(tok(51))
        srv = self.serve()
        self.assertEqual(srv.post("/release/get-token", make_record(tok(51)), key=PUSH).status, 200)
        r = srv.post("/v1/tokens/default/invalid", {"access_token": tok(51)})
        self.assertEqual(r.status, 501, r.body)
        self.assertIsNone(r.headers.get("retry-after"))
        self.assertIn("未配置飞书凭证", r.json()["message"])
        with open(os.path.join(ROOT, "docs", "deploy-scf.md"), encoding="utf-8") as f:
            guide = f.read()
        shape_b = [line for line in guide.splitlines() if line.startswith("| `/invalid` 报告 |")][0].split("|")[3]
        self.assertIn("501", shape_b)
        prose = guide.split("写入「更新才写入」", 1)[1].split("\n\n", 1)[0]
        self.assertIn("501", prose)
        for text in (shape_b, prose.replace("\n", "")):
            self.assertNotRegex(text, r"没有实例能刷新时[^。|]*503")


class LeaseTest(FeishuEnv, S3TestCase):
    """Two servers with Feishu credentials on one bucket: the lease object
    lets one fetch; /invalid is answered by the holder's refresher, and by
    the other with a 503 that says why; when the holder dies, the other
    takes over once the lease has expired."""

    def setUp(self):
        super().setUp()
        self.start_feishu(ttl=8, renew_window=4)
        env = dict(self.feishu_env(FEISHU_RENEW_WINDOW=4), **self.s3.env())
        self.pair = [self.server(store=self.s3.url(), env=env).start() for _ in range(2)]

    def holder(self):
        held = [s for s in self.pair if "本实例持有租约 refresh:default" in s.log()]
        if len(held) != 1:
            return None
        return held[0], [s for s in self.pair if s is not held[0]][0]

    def served_by_both(self, token):
        return all((self.served(s) or {}).get("access_token") == token for s in self.pair)

    def test_a_holder_that_stops_gives_the_lease_back(self):
        """SIGTERM: the holder rewrites its lease as expired before its
        outgoing requests are cut, and the other takes over at its next
        look (every 3 s), not when the lease runs out 30 s later
        (adversary finding 6: the release was refused, "shutting down")."""
        holder, other = self.wait_for(self.holder, what="a lease holder")
        self.wait_for(lambda: "租约 refresh:default 由其他实例持有" in other.log(), timeout=10,
                      what="the other instance standing by")
        stopped = time.time()
        holder.stop()
        lease = json.loads(self.s3.raw("GET", PREFIX + "/leases/refresh-default.json")[1])
        self.assertEqual(lease["expires"], 0, "the lease was not given back:\n" + holder.log())
        self.assertIn("已释放租约 refresh:default", holder.log())
        self.wait_for(lambda: "本实例持有租约 refresh:default" in other.log(), timeout=60, what="the takeover")
        # Its next look, not the expiry (30 s): generous for a loaded machine.
        self.assertLess(time.time() - stopped, 20)

    def test_one_fetches_and_the_other_takes_over_when_it_dies(self):
        holder, other = self.wait_for(self.holder, what="a lease holder")
        self.wait_for(lambda: self.served_by_both(self.feishu.current_token()), timeout=15,
                      what="both serving the first token")
        self.wait_for(lambda: "租约 refresh:default 由其他实例持有" in other.log(), timeout=10,
                      what="the other instance standing by:\n" + other.log())
        info = other.get("/readyz").json()["refresh"]["default"]
        self.assertFalse(info["lease_held"])
        self.assertIsNotNone(info["lease_holder"])
        self.assertTrue(holder.get("/readyz").json()["refresh"]["default"]["lease_held"])
        n = len(self.fetch_times())
        self.wait_for(lambda: len(self.fetch_times()) > n, timeout=15, what="the next cycle")
        self.assertNotIn("下次刷新", other.log())

        # /invalid: the holder refreshes; the other cannot hand the report on
        # (S3 carries no messages between servers) and says so with a 503.
        def report(srv):
            cur = self.feishu.current_token()
            if (self.served(srv) or {}).get("access_token") != cur:
                return None  # a token already replaced is answered with the new record
            r = srv.post("/v1/tokens/default/invalid", {"access_token": cur})
            return r if (self.served(srv) or {}).get("access_token") == cur or r.status != 200 else None
        r = self.wait_for(lambda: report(other), timeout=20, what="a report of the token served")
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("租约", r.json()["message"])
        self.assertEqual(r.headers.get("retry-after"), "5")
        r = self.wait_for(lambda: report(holder), timeout=20, what="a report to the holder")
        self.assertIn(r.status, (200, 202, 409), r.body)
        self.assertIn("收到 token 无效的报告", holder.log())

        holder.kill9()
        killed_at = time.time()
        self.wait_for(lambda: "本实例持有租约 refresh:default" in other.log(), timeout=60,
                      what="lease taken over after it expired")
        self.assertLess(time.time() - killed_at, 30 * 1.1 + 5)
        n = len(self.fetch_times())
        self.wait_for(lambda: len(self.fetch_times()) > n, timeout=20, what="a fetch by the new holder")
        self.wait_for(lambda: (self.served(other) or {}).get("access_token") == self.feishu.current_token(),
                      timeout=10, what="the new holder serving its token")


if __name__ == "__main__":
    unittest.main()
