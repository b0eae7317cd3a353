"""A server's life at its edges: starting where another already listens,
stopping with requests and a refresh in flight, and answering GETs while the
store is stuck.  Every wait here waits for an event (an answer, an exit, a
refused connect) with a generous deadline; none counts events in a window."""
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import unittest

import harness
from feishu_env import PUSH_KEY, FeishuEnv
from harness import TestCase, make_record, request
from redisd import RedisServer

TOKEN = "t-g1044ghEGNOJ5OSQF5OYATETPB"


def connect_refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def waiting(srv):
    """Requests a worker holds now (the tokendist_requests_waiting gauge)."""
    for line in srv.get("/metrics").body.decode().splitlines():
        if line.startswith("tokendist_requests_waiting "):
            return int(line.split()[1])
    raise AssertionError("no tokendist_requests_waiting in /metrics")


class StoreLock:
    """Holds the SQLite write lock of a store file from another process's
    point of view (a second connection), until released."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, timeout=1, isolation_level=None)
        self.db.execute("BEGIN EXCLUSIVE")

    def release(self):
        if self.db:
            self.db.execute("ROLLBACK")
            self.db.close()
            self.db = None


class Background(threading.Thread):
    """Runs fn in a thread and keeps its result or exception."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:  # noqa: BLE001 -- reported by the test
            self.error = e

    def value(self, timeout=30):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("background request did not finish within %d s" % timeout)
        if self.error:
            raise self.error
        return self.result


class SecondServerTest(FeishuEnv, TestCase):
    def test_second_server_on_the_same_port_exits_before_fetching(self):
        first = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.start_feishu()
        second = self.server(port=first.port, env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY,
                                                                    TENCENT_CLOUD_ENABLED="false"))
        second.start(wait=False)
        try:
            rc = second.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.fail("a second server on a taken port kept running:\n" + second.log())
        self.assertEqual(rc, 1)
        self.assertIn("已被占用", second.log())
        self.assertIn("address already in use", second.log())
        self.assertIn(str(first.port), second.log())
        self.assertNotIn("已启动", second.log())
        # It never asked Feishu: a process that cannot serve must not fetch.
        self.assertEqual(self.feishu.requests_to("/open-apis/auth/v3/"), [])
        # The first one alone takes every request.
        for i in range(10):
            r = first.post("/release/get-token", make_record(TOKEN, generated=int(time.time()) - i),
                           key=PUSH_KEY)
            self.assertIn(r.status, (200, 409), r.body)


class ShutdownTest(FeishuEnv, TestCase):
    def test_sigterm_refuses_new_connections_and_answers_the_request_in_flight(self):
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        lock = StoreLock(os.path.join(self.tmp, "var", "tokendist.db"))
        try:
            post = Background(lambda: srv.post("/release/get-token", make_record(TOKEN), key=PUSH_KEY,
                                               timeout=30))
            # The POST is in flight once a worker holds it (the store waits on our lock).
            self.wait_for(lambda: waiting(srv) == 1, what="the POST waiting for the store")
            srv.proc.send_signal(signal.SIGTERM)
            self.wait_for(lambda: connect_refused(srv.port), timeout=10,
                          what="new connections refused after SIGTERM")
            self.assertTrue(post.is_alive(), "the POST was answered before the store was free")
        finally:
            lock.release()
        self.assertEqual(post.value().status, 200)
        self.assertEqual(srv.proc.wait(20), 0)
        self.assertIn("已停止", srv.log())

    def test_sigterm_with_a_stuck_store_answers_queued_writes_at_once_and_exits_promptly(self):
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        lock = StoreLock(os.path.join(self.tmp, "var", "tokendist.db"))
        try:
            posts = [Background(lambda i=i: srv.post("/v1/tokens/n%d" % i, make_record("t-n%020d" % i),
                                                     key=PUSH_KEY, timeout=60)) for i in range(12)]
            self.wait_for(lambda: waiting(srv) == 12, what="12 POSTs waiting for the store")
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            try:
                rc = srv.proc.wait(15)  # before: ~60 s, each queued POST waited 5 s for the lock in turn
            except subprocess.TimeoutExpired:
                self.fail("serve did not stop within 15 s while the store stayed locked")
            took = time.monotonic() - t0
            answers = [p.value() for p in posts]
        finally:
            lock.release()
        self.assertEqual(rc, 0)
        self.assertLess(took, 15)
        self.assertEqual({r.status for r in answers}, {503}, [r.body for r in answers][:2])
        self.assertTrue(all("retry-after" in r.headers for r in answers))
        # The ones no worker had started were not run at all: they say why.
        self.assertTrue(any("正在停止" in r.json()["message"] for r in answers), [r.body for r in answers][:2])

    def test_sigterm_cuts_a_refresh_cycle_short(self):
        self.start_feishu()
        # Feishu answers the token request only after a minute: the cycle hangs in it.
        self.feishu.control({"fail": "slow", "delay": 60, "path": "/open-apis/auth/v3/"})
        srv = self.server(env=self.feishu_env(TOKENDIST_PUSH_KEYS=PUSH_KEY, TENCENT_CLOUD_ENABLED="false",
                                              TOKENDIST_HTTP_TIMEOUT="120")).start()
        self.wait_for(lambda: self.feishu.requests_to("/open-apis/auth/v3/"), timeout=20,
                      what="the refresher's token request")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(15)  # systemd's TimeoutStopSec is 20 s
        except subprocess.TimeoutExpired:
            self.fail("serve did not stop while a refresh cycle was in flight")
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 15)
        self.assertIn("刷新已中止", srv.log())
        self.assertNotIn("token 刷新失败", srv.log())


class StoreOffTheEventThreadTest(FeishuEnv, TestCase):
    """A GET never waits for the store (design goal, docs/architecture.md)."""

    def test_gets_are_answered_while_a_post_waits_for_the_sqlite_lock(self):
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN), key=PUSH_KEY).status, 200)
        lock = StoreLock(os.path.join(self.tmp, "var", "tokendist.db"))
        try:
            post = Background(lambda: srv.post(
                "/release/get-token", make_record("t-newer000000000000000000", generated=int(time.time()) + 1),
                key=PUSH_KEY, timeout=30))
            self.wait_for(lambda: waiting(srv) == 1, what="the POST waiting for the store")
            # The first GET is answered while the POST still waits (before, it
            # waited behind it for up to the 5 s busy timeout) ...
            first = srv.get("/release/get-token", timeout=30)
            post_pending = post.is_alive()
            # ... and so are 200 more on 8 connections, all while the lock is held.
            answers = []

            def reader():
                for _ in range(25):
                    r = srv.get("/release/get-token", timeout=30)
                    answers.append((r.status, r.json()["access_token"]))

            readers = [Background(reader) for _ in range(8)]
            for t in readers:
                t.value(timeout=60)
            ready = srv.get("/readyz", timeout=30)
        finally:
            lock.release()
        self.assertEqual((first.status, first.json()["access_token"]), (200, TOKEN))
        self.assertTrue(post_pending, "the first GET was answered only after the POST")
        self.assertEqual(len(answers), 200)
        self.assertEqual(set(answers), {(200, TOKEN)})
        self.assertEqual(ready.status, 200, ready.body)
        # The POST still gets its answer: stored once the lock is gone, or
        # 503 + Retry-After when the store stayed locked past its timeout.
        r = post.value()
        if r.status == 503:
            self.assertIn("retry-after", r.headers)
            self.assertEqual(srv.get("/release/get-token").json()["access_token"], TOKEN)
        else:
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(srv.get("/release/get-token").json()["access_token"], "t-newer000000000000000000")

    def test_readyz_and_writes_do_not_queue_behind_writes_stuck_on_the_sqlite_lock(self):
        srv = self.server(env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.assertEqual(srv.post("/release/get-token", make_record(TOKEN), key=PUSH_KEY).status, 200)
        lock = StoreLock(os.path.join(self.tmp, "var", "tokendist.db"))
        try:
            posts = [Background(lambda i=i: srv.post("/v1/tokens/n%d" % i, make_record("t-n%020d" % i),
                                                     key=PUSH_KEY, timeout=60)) for i in range(20)]
            self.wait_for(lambda: waiting(srv) == 20, what="20 POSTs waiting for the store")
            # /readyz has a lane of its own (before: it queued behind the
            # 20 writes, 5 s each, and answered after ~85 s).
            ready = srv.get("/readyz", timeout=5)
            self.assertEqual(ready.status, 200, ready.body)
            # Every write is answered within its budget: the ones a worker
            # ran after the 5 s busy timeout, the others at once when a
            # worker reached them after waiting longer than 2 s in the queue.
            answers = [p.value(timeout=60) for p in posts]
            self.assertEqual({r.status for r in answers}, {503}, [r.body for r in answers][:2])
            self.assertTrue(all("retry-after" in r.headers for r in answers))
            self.assertTrue(any("排队" in r.json()["message"] for r in answers), [r.body for r in answers][:2])
            ready = srv.get("/readyz", timeout=5).json()
            self.assertNotEqual(ready["store_writes"], "ok")
            self.assertIn("store_writes_failing_since", ready)
        finally:
            lock.release()
        self.assertEqual(srv.post("/v1/tokens/n0", make_record("t-n%020d" % 0), key=PUSH_KEY).status, 200)
        self.assertEqual(srv.get("/readyz").json()["store_writes"], "ok")

    def test_gets_are_answered_while_redis_hangs(self):
        redis = RedisServer(self.tmp).start()
        self.addCleanup(redis.stop)
        srv = self.server(store=redis.url(), env={"TOKENDIST_PUSH_KEYS": PUSH_KEY}).start()
        self.assertEqual(srv.post("/get-token", make_record(TOKEN), key=PUSH_KEY).status, 200)
        redis.proc.send_signal(signal.SIGSTOP)  # Redis hangs: connections stay open, nothing answers
        try:
            posts = [Background(lambda i=i: srv.post(
                "/get-token", make_record("t-hang%020d" % i, generated=int(time.time()) + 1 + i),
                key=PUSH_KEY, timeout=30)) for i in range(3)]
            self.wait_for(lambda: waiting(srv) >= 1, what="a POST waiting for Redis")
            first = srv.get("/get-token", timeout=30)
            post_pending = any(p.is_alive() for p in posts)
            for _ in range(100):
                r = srv.get("/get-token", timeout=30)
                self.assertEqual((r.status, r.json()["access_token"]), (200, TOKEN))
            answered = [p.value(timeout=30) for p in posts]
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        self.assertEqual((first.status, first.json()["access_token"]), (200, TOKEN))
        self.assertTrue(post_pending, "the first GET was answered only after the POSTs")
        for r in answered:
            self.assertEqual(r.status, 503, r.body)
            self.assertIn("retry-after", r.headers)
            # Each says why; one sent to the stopped Redis also says its
            # fate is open (when a reload or a resync hit the timeout first,
            # the POSTs find Redis marked down and are never sent).
            self.assertIn("Redis", r.json()["message"])
        # A 503 after a timeout does not say the write did not happen: the
        # stopped Redis runs what it was sent once it continues.  What is
        # served is one of the records sent, never an older one.
        sent = {TOKEN} | {"t-hang%020d" % i for i in range(3)}
        self.assertIn(srv.get("/get-token").json()["access_token"], sent)


if __name__ == "__main__":
    unittest.main()
