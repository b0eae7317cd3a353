"""Redis for the black-box tests: the shared test Redis (TOKENDIST_TEST_REDIS,
started by .ci/run or scripts/test) with a key prefix of its own per test,
or a private redis-server process that a test may kill and restart."""
import os
import secrets
import shutil
import socket
import subprocess
import time

from harness import DEADLINE, free_port


def _resp(port, *args, password=None, db=0, timeout=DEADLINE):
    """One command over RESP (after AUTH and SELECT when asked); returns the
    decoded reply (enough for PING, HGET, LRANGE, KEYS, DEL, CONFIG SET)."""
    def enc(*a):
        out = b"*%d\r\n" % len(a)
        for x in a:
            x = x if isinstance(x, bytes) else str(x).encode()
            out += b"$%d\r\n%s\r\n" % (len(x), x)
        return out

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        for pre in ([("AUTH", password)] if password else []) + ([("SELECT", db)] if db else []):
            s.sendall(enc(*pre))
            _read(f)
        s.sendall(enc(*args))
        return _read(f)


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError("bad RESP line %r" % line[:40])


class RedisServer:
    """A private redis-server on a free loopback port.  appendonly with
    appendfsync always by default: what docs/redis.md recommends, and
    what lets a test kill -9 Redis and find acknowledged writes again."""

    def __init__(self, workdir, password=None, appendfsync="always"):
        self.dir = os.path.join(workdir, "redis-%s" % secrets.token_hex(3))
        os.makedirs(self.dir)
        self.port = free_port()
        self.password = password
        self.appendfsync = appendfsync
        self.proc = None

    def start(self, timeout=DEADLINE):
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", self.dir,
               "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
               "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")]
        if self.password:
            cmd += ["--requirepass", self.password]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except (OSError, RuntimeError):
                time.sleep(0.05)
        raise AssertionError("redis-server did not start on port %d" % self.port)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cmd(self, *args):
        return _resp(self.port, *args, password=self.password)

    def url(self, db=0, prefix=None):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d/%d%s" % (auth, self.port, db,
                                               "?prefix=" + prefix if prefix else "")


class SharedRedis:
    """The suite's Redis, from TOKENDIST_TEST_REDIS; a private one when the
    variable is unset (ctest run by hand), so the tests never skip."""

    def __init__(self, workdir):
        self.private = None
        url = os.environ.get("TOKENDIST_TEST_REDIS")
        if not url:
            self.private = RedisServer(workdir).start()
            url = self.private.url()
        self.base = url.split("?")[0]
        rest = self.base.split("://", 1)[1]
        hostport, _, db = rest.rpartition("@")[2].partition("/")
        self.port = int(hostport.rsplit(":", 1)[1])
        self.db = int(db or 0)
        # Tests run in parallel against this one server: each its own keys.
        self.prefix = "tdtest-%s:" % secrets.token_hex(4)

    def url(self):
        return "%s?prefix=%s" % (self.base, self.prefix)

    def cmd(self, *args):
        return _resp(self.port, *args, db=self.db)

    def close(self):
        try:
            keys = self.cmd("KEYS", self.prefix + "*") or []
            if keys:
                self.cmd("DEL", *keys)
        except (OSError, RuntimeError):
            pass
        if self.private:
            self.private.stop()

