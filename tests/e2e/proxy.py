"""A tiny reverse proxy for the client tests, in front of the real
`tokendist serve`: it counts the requests that reach the server, can hold
each one back (so concurrent clients overlap), can shift the `Date`
header (a server whose clock is ahead or behind), can answer in the
server's place with an error status (a failing gateway), and counts the
TCP connections clients open to it (keep-alive).  A subclass can hold a
request back before it goes on or after it was answered (arrive/leave:
tests/e2e/test_s3.py's slow object store), pass the upstream's own Date
on (keep_date: an object store's clock is what its leases are measured
by) and rewrite the answer's headers (rewrite: a gateway that changes
them).

The proxy never logs: requests carry read keys and bodies carry tokens.
"""
import http.client
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import DEADLINE

HOP = {"connection", "keep-alive", "transfer-encoding", "date", "server", "content-length", "expect"}


class Proxy:
    keep_date = False       # answer with the upstream's Date instead of our own clock's

    def __init__(self, upstream_port, date_offset=0, delay=0.0):
        self.upstream_port = upstream_port
        self.date_offset = date_offset      # seconds added to the real time in Date
        self.delay = delay                  # seconds each request waits before going on
        self.fail_status = None             # answer this status instead of forwarding
        self.lock = threading.Lock()
        self.requests = []                  # (method, path)
        self.connections = 0                # TCP connections accepted
        self.answered = 0                   # requests answered
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with proxy.lock:
                    proxy.connections += 1

            def _any(self):
                self.upstream_date = None   # a kept-alive connection's last answer is not this one
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                with proxy.lock:
                    proxy.requests.append((self.command, self.path))
                held = proxy.arrive(self.command, self.path)
                if proxy.delay:
                    time.sleep(proxy.delay)
                if proxy.fail_status:
                    out = b"<html><body><h1>Internal Server Error</h1></body></html>"
                    self.send_response(proxy.fail_status)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                # Host goes on as it came: an S3 signature covers it.
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=DEADLINE)
                try:
                    hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                    try:
                        conn.request(self.command, self.path, body=body, headers=hdrs)
                        r = conn.getresponse()
                        out = r.read()
                    except OSError:     # the server is down: a gateway says 502
                        self.send_response(502)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                finally:
                    conn.close()
                proxy.leave(held)
                self.upstream_date = r.getheader("Date") if proxy.keep_date else None
                try:
                    self.send_response(r.status)
                    for k, v in proxy.rewrite(r.status, [(k, v) for k, v in r.getheaders()
                                                         if k.lower() not in HOP]):
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(out)
                except OSError:     # the client gave up on it and closed
                    self.close_connection = True
                with proxy.lock:
                    proxy.answered += 1

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _any

        # send_response adds its own Date; ours (or the upstream's) must be the only one.
        Handler.upstream_date = None
        Handler.date_time_string = lambda self, timestamp=None: self.upstream_date or formatdate(
            time.time() + proxy.date_offset, usegmt=True)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = self._handle_error
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def arrive(self, method, path):
        """Called as a request arrives; what it returns is given to leave()."""
        return None

    def leave(self, held):
        """Called when the server answered, before the answer goes back."""

    def rewrite(self, status, headers):
        """The answer's headers, [(name, value)], as they go back."""
        return headers

    def _handle_error(self, request, client_address):
        # A client that stopped and closed its connection is expected;
        # anything else is a bug in the test and keeps its traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            ThreadingHTTPServer.handle_error(self.httpd, request, client_address)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def port(self):
        return self.httpd.server_address[1]

    def url(self, path="/release/get-token"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def count(self, method=None, prefix=""):
        with self.lock:
            return sum(1 for m, p in self.requests
                       if (method is None or m == method) and p.startswith(prefix))
