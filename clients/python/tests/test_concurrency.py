"""Single flight: threads asking at once share one fetch."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from harness import TestCase, answer, make_record, needs_bin
from tokendist_client import TokendistError, create_client

THREADS = 32


def all_at_once(n: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``n`` threads released together; results or exceptions."""
    gate = threading.Barrier(n)

    def one() -> Any:
        gate.wait()
        try:
            return fn()
        except Exception as e:      # noqa: BLE001 - the test looks at it
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: one(), range(n)))


class SingleFlight(TestCase):
    @needs_bin
    def test_32_threads_at_once_make_one_request(self) -> None:
        srv = self.server()
        rec = make_record()
        srv.push(rec)
        hold = threading.Event()
        proxy = self.proxy(srv.url)
        # the first request waits until every thread has asked, so they all overlap it
        proxy.intercept = lambda h, m, p, b: bool(hold.wait(10)) and False
        client = create_client(api_url=f"{proxy.url}/v1/tokens/default")
        threading.Timer(0.5, hold.set).start()
        tokens = all_at_once(THREADS, client.get_access_token)
        self.assertEqual(len(tokens), THREADS)
        self.assertTrue(all(t == rec["access_token"] for t in tokens), "every thread got the token")
        self.assertEqual(proxy.count("GET", "/v1/tokens/default"), 1)
        self.assertEqual(srv.served(), 1, "the server counted one token GET (/metrics)")

        # a mix of the three getters after clear(): one more
        client.clear()
        getters = [client.get_access_token, client.get_record, client.get_record_info]
        k = iter(range(THREADS))
        all_at_once(THREADS, lambda: getters[next(k) % 3]())
        self.assertEqual(proxy.count("GET"), 2)
        self.assertEqual(srv.served(), 2)

    @needs_bin
    def test_threads_share_one_failure_and_the_next_call_tries_again(self) -> None:
        srv = self.server()
        hold = threading.Event()

        def fail(h: Any, m: str, p: str, b: bytes) -> bool:
            hold.wait(10)
            return answer(h, 503, {"error": "busy"})

        proxy = self.proxy(srv.url, intercept=fail)
        client = create_client(api_url=f"{proxy.url}/release/get-token")
        threading.Timer(0.5, hold.set).start()
        results = all_at_once(20, client.get_access_token)
        self.assertTrue(all(isinstance(r, TokendistError) and r.code == "EHTTP" for r in results))
        self.assertEqual(proxy.count(), 1)
        self.assertError(client.get_access_token, "EHTTP")
        self.assertEqual(proxy.count(), 2, "a failure is not kept")
