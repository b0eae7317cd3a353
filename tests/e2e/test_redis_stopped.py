"""A Redis that is stopped (SIGSTOP: hung, overloaded, a VM paused) rather
than gone: the kernel still accepts TCP connections for it, and nothing
answers.  Such a connect is not a reconnect: the server stays marked down
from the first failure (one log line, /readyz counting from then), POSTs
get their 503 at once instead of waiting for Redis, and the one
"reconnected" line comes when Redis answers again.  Every wait is for an
event with a generous deadline."""
import re
import signal
import time
import unittest

from harness import TestCase, make_record
from redisd import RedisServer

PUSH = "push-key-redis-stopped-001"
TOKEN = "t-stopped00000000000000000"


class StoppedRedisTest(TestCase):
    def setUp(self):
        super().setUp()
        self.secrets += [PUSH]
        self.redis = RedisServer(self.tmp).start()
        self.addCleanup(self.redis.stop)

    def down_for(self, srv):
        """The seconds /readyz says Redis has been unreachable, or None."""
        m = re.search(r"已 (\d+) 秒无法连接", srv.get("/readyz").body.decode())
        return int(m.group(1)) if m else None

    def test_a_stopped_redis_is_down_until_it_answers(self):
        srv = self.server(["--push-key", PUSH], store=self.redis.url()).start()
        self.assertEqual(srv.post("/get-token", make_record(TOKEN), key=PUSH).status, 200)
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            # The first write finds out (after the command timeout).
            r = srv.post("/get-token", make_record("t-stopped1", generated=int(time.time()) + 1), key=PUSH)
            self.assertEqual(r.status, 503, r.body)
            # Marked down from then on: the keeper's connects succeed at the
            # TCP level all along, and none of them counts as reconnected,
            # so the outage's age grows.
            self.wait_for(lambda: (self.down_for(srv) or 0) >= 6, what="/readyz counting the outage from its start")
            log = srv.log()
            self.assertEqual(log.count("Redis 连接断开"), 1, log)
            self.assertNotIn("已重新连接", log)
            # While it is marked down a POST is refused without waiting for
            # Redis (the command timeout is 2 s).
            t0 = time.monotonic()
            r = srv.post("/get-token", make_record("t-stopped2", generated=int(time.time()) + 2), key=PUSH)
            took = time.monotonic() - t0
            self.assertEqual((r.status, r.headers.get("retry-after")), (503, "5"), r.body)
            self.assertIn("暂不可用", r.json()["message"])
            self.assertLess(took, 1.5, "a POST waited for the stopped Redis")
            self.assertEqual(srv.get("/get-token").json()["access_token"], TOKEN)
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        log = self.wait_log(srv, "Redis 已重新连接")
        m = re.search(r"Redis 已重新连接 \([^)]*\)，断开 (\d+) 秒", log)
        self.assertTrue(m and int(m.group(1)) >= 6, log)
        self.wait_for(lambda: srv.get("/readyz").status == 200, what="ready again")
        self.assertEqual(srv.post("/get-token", make_record("t-stopped3", generated=int(time.time()) + 3),
                                  key=PUSH).status, 200)
        log = srv.log()
        self.assertEqual(log.count("Redis 连接断开"), 1, log)
        self.assertEqual(log.count("已重新连接"), 1, log)


if __name__ == "__main__":
    unittest.main()
