"""A headless Chromium for black-box tests of the status page: Debian's
`chromium`, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes, commands
on the browser's fd 3, answers and events on its fd 4), so a test needs
nothing beyond the standard library and the browser itself.

A browser takes seconds to start, so a test class starts one per
setting and each test opens its own tab (``Browser.tab()``: a new page with
its own sessionStorage).  A tab loads a page, waits (with a deadline, never
a fixed sleep) until the page's text says what it should, reads the DOM as
``--dump-dom`` would, runs a line of script to fill a form, and takes a
full-page screenshot.  ``Browser(scripts=False)`` runs with JavaScript off
(``--blink-settings=scriptEnabled=false``): a page is then what the server
drew, as a reader without JavaScript sees it.
"""
import base64
import html.parser
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

import harness

CHROMIUM = os.environ.get("TOKENDIST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


class _Text(html.parser.HTMLParser):
    """The visible text of a DOM dump: what a reader sees (no script, no
    style; a hidden element's text is left out like the browser does)."""

    SKIP = {"script", "style", "head", "template"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, scripts):
        super().__init__()
        self.parts, self.stack = [], []
        # With scripts on, a <noscript>'s content is text the reader never sees.
        self.skip = self.SKIP | ({"noscript"} if scripts else set())

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        hidden = any(k == "hidden" for k, _ in attrs)
        self.stack.append(tag in self.skip or hidden)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not any(self.stack):
            self.parts.append(data)


def visible_text(dom, scripts=True):
    p = _Text(scripts)
    p.feed(dom)
    return " ".join(" ".join(p.parts).split())


class Browser:
    def __init__(self, workdir, scripts=True, width=1100):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=workdir)
        self.width = width
        self.scripts = scripts
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--hide-scrollbars", "--force-device-scale-factor=1",
                "--remote-debugging-pipe", "--user-data-dir=" + self.profile, "--lang=zh-CN"]
        if not scripts:
            args.append("--blink-settings=scriptEnabled=false")
        self.log_path = os.path.join(workdir, "chromium-%x.log" % id(self))

        def fds():      # the pipe ends at the fds the browser reads and writes
            a, b = os.dup(to_child_r), os.dup(from_child_w)     # apart from 3 and 4 first
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args + ["about:blank"], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, preexec_fn=fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self._next = 0
        self._answers = {}
        self._sinks = {}        # session id -> that tab's event queue
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.call("Target.getTargets")     # answers once the browser is up

    # -- the protocol -------------------------------------------------------

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self._from_child, 65536)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._answers[msg["id"]] = msg
                        self._cond.notify_all()
                elif msg.get("sessionId") in self._sinks:
                    self._sinks[msg["sessionId"]].put(msg)
        with self._cond:
            self._answers[None] = {"error": {"message": "the browser went away"}}
            self._cond.notify_all()

    def call(self, method, session=None, timeout=harness.DEADLINE, **params):
        with self._cond:
            self._next += 1
            n = self._next
        msg = {"id": n, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while n not in self._answers and None not in self._answers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("the browser did not answer %s within %.0f s" % (method, timeout))
                self._cond.wait(left)
            answer = self._answers.pop(n, None) or self._answers[None]
        if "error" in answer:
            raise AssertionError("%s: %s\n%s" % (method, answer["error"], self.log()[-2000:]))
        return answer.get("result", {})

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def tab(self):
        """A new page, in a browsing context of its own (its own
        sessionStorage); close it with Tab.close()."""
        return Tab(self)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except AssertionError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


class Tab:
    """One page of a Browser: what a test does with it."""

    def __init__(self, browser):
        self.b = browser
        self.scripts, self.width = browser.scripts, browser.width
        self.context = browser.call("Target.createBrowserContext")["browserContextId"]
        self.target = browser.call("Target.createTarget", url="about:blank",
                                   browserContextId=self.context)["targetId"]
        self.session = browser.call("Target.attachToTarget", targetId=self.target, flatten=True)["sessionId"]
        self._events = queue.Queue()
        browser._sinks[self.session] = self._events
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=900, deviceScaleFactor=1,
                  mobile=False)

    def call(self, method, timeout=harness.DEADLINE, **params):
        return self.b.call(method, session=self.session, timeout=timeout, **params)

    def log(self):
        return self.b.log()

    def open(self, url):
        """Loads url and waits for its load event."""
        while not self._events.empty():
            self._events.get_nowait()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def wait_event(self, method, timeout=harness.DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %s from the browser within %.0f s" % (method, timeout))
            try:
                ev = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.get("method") == method:
                return ev

    def dom(self):
        """The document as it is now (what --dump-dom prints)."""
        root = self.call("DOM.getDocument", depth=-1)["root"]
        return self.call("DOM.getOuterHTML", nodeId=root["nodeId"])["outerHTML"]

    def text(self):
        return visible_text(self.dom(), self.scripts)

    def has(self, selector):
        root = self.call("DOM.getDocument", depth=0)["root"]
        return self.call("DOM.querySelector", nodeId=root["nodeId"], selector=selector)["nodeId"] != 0

    def wait_text(self, *needles, timeout=harness.DEADLINE, absent=()):
        """Waits until the page's visible text holds every needle and none
        of `absent`; returns the text."""
        last = [""]

        def ready():
            last[0] = self.text()
            return all(n in last[0] for n in needles) and not any(a in last[0] for a in absent)
        try:
            harness.wait_for(ready, timeout, "the page to show %r" % (needles,))
        except AssertionError as e:
            raise AssertionError("%s; the page says:\n%s" % (e, last[0][:3000])) from None
        return last[0]

    def run(self, script):
        """Evaluates script in the page (the test's hand: filling a form)."""
        r = self.call("Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("script failed: %s" % r["exceptionDetails"])
        return r.get("result", {}).get("value")

    def screenshot(self, path):
        """A PNG of the whole page (not only the window) at path."""
        m = self.call("Page.getLayoutMetrics")
        size = m.get("cssContentSize") or m["contentSize"]
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": self.width, "height": size["height"], "scale": 1})
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def close(self):
        self.b._sinks.pop(self.session, None)
        try:
            self.b.call("Target.closeTarget", targetId=self.target, timeout=10)
            self.b.call("Target.disposeBrowserContext", browserContextId=self.context, timeout=10)
        except AssertionError:
            pass
