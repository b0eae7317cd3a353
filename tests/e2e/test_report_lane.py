"""Invalid-token reports of one slow platform hold one report worker, not
all of them: a second report of the same name parks (no thread) until the
first ends, then answers from the refresh that first one started.  So a
report of another platform's token meanwhile is answered at once, not 503
after the queue wait (issue #12: "one provider being down never delays
the others").  DingTalk's double answers every token request in 8 s --
slow, under the 10 s HTTP timeout, so not "down"."""
import threading
import time
import unittest

import harness
from test_providers import Platforms


class SlowPlatformReportsTest(Platforms, harness.TestCase):
    def test_reports_of_a_slow_platform_leave_workers_to_the_others(self):
        self.start_platforms(ttl=7200, wechat_window=300)
        srv = self.server(env=self.env(TOKENDIST_WX_RENEW_WINDOW=300, TOKENDIST_DING_RENEW_WINDOW=1800)).start()
        wx = self.wait_for(lambda: self.token(srv, "/v1/tokens/wx"), what="the WeChat token")
        ding = self.wait_for(lambda: self.token(srv, "/v1/tokens/ding"), what="the DingTalk token")
        self.dt.control({"fail": "slow", "delay": 8, "times": 100})
        res = {}

        def report(key, name, tok):
            t0 = time.monotonic()
            r = srv.post("/v1/tokens/%s/invalid" % name, {"access_token": tok})
            res[key] = (r.status, time.monotonic() - t0)

        # More reports than the report lane has workers (4).
        th = [threading.Thread(target=report, args=(i, "ding", ding["access_token"])) for i in range(8)]
        for t in th:
            t.start()
        self.wait_log(srv, "收到 token 无效的报告")   # the first DingTalk report is at the refresher
        report("wx", "wx", wx["access_token"])
        for t in th:
            t.join()
        # WeChat confirms its token still valid: 409, whatever DingTalk does.
        self.assertNotEqual(res["wx"][0], 503, "the WeChat report queued behind DingTalk's: %r" % (res["wx"],))
        self.assertEqual(res["wx"][0], 409, res["wx"])
        # Every DingTalk report is answered: 202, the forced refresh runs.
        self.assertEqual(sorted(s for s, _ in (res[i] for i in range(8))), [202] * 8,
                         {i: res[i] for i in range(8)})


if __name__ == "__main__":
    unittest.main()
