"""The package as people get it: installs offline into a fresh venv, is typed
(mypy --strict passes on it and on code using it), uses the standard library
only, and builds reproducible archives."""

from __future__ import annotations

import ast
import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import unittest
import zipfile

from harness import PACKAGE_DIR, TestCase, make_record, needs_bin

SOURCES = os.path.join(PACKAGE_DIR, "tokendist_client")
MYPY = shutil.which("mypy")
# One cache for every mypy run (kept under build/ by scripts/test): the standard
# library's stubs are analysed once instead of for each run.
MYPY_CACHE = os.environ.get("TOKENDIST_MYPY_CACHE") or ""
if not MYPY_CACHE:
    MYPY_CACHE = tempfile.mkdtemp(prefix="tokendist-mypy-")
    atexit.register(shutil.rmtree, MYPY_CACHE, True)
# scripts/test sets TOKENDIST_REQUIRE_MYPY=1: there a missing mypy fails instead of skipping.
needs_mypy = unittest.skipIf(MYPY is None and os.environ.get("TOKENDIST_REQUIRE_MYPY") != "1",
                             "mypy not installed (Debian: apt-get install mypy)")

# Code a user writes: every public name, with the types a checker should see.
USER_CODE = textwrap.dedent("""
    from typing import Any
    import tokendist_client
    from tokendist_client import (RecordInfo, ReportResult, TokendistClient, TokendistError,
                                  create_client, fingerprint, is_feishu_invalid_token_error)

    CONFIG: dict[str, Any] = {"TENCENT_CLOUD_ENABLED": True,
                              "TENCENT_CLOUD_API_URL": "https://h/release/get-token"}
    client: TokendistClient = create_client(CONFIG, min_remaining_seconds=60, timeout=2.5,
                                            gitee={"owner": "o", "repo": "r", "path": "token.json"},
                                            field="tenant_access_token", name="default")

    def call_feishu(token: str) -> dict[str, Any]:
        return {"code": 0}

    def use() -> None:
        token: str = client.get_access_token()
        info: RecordInfo = client.get_record_info()
        left: int = info.remaining_seconds
        record: dict[str, Any] = client.get_record()
        result: ReportResult = client.report_invalid(token)
        status: int | None = result.status
        answer: dict[str, Any] = client.with_token(call_feishu)
        try:
            client.get_access_token()
        except TokendistError as e:
            code: str = e.code
            print(code, e.status, e.source, fingerprint(token), left, record, status, answer)
        print(is_feishu_invalid_token_error(answer), tokendist_client.__version__)
""")
# The checker must catch these: proof the types are not Any.
USER_MISTAKES = textwrap.dedent("""
    from tokendist_client import create_client
    client = create_client(api_url=42)
    n: int = client.get_access_token()
    client.get_token()
""")


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


class Package(TestCase):
    @needs_mypy
    def test_mypy_strict_on_the_package(self) -> None:
        self.assertIsNotNone(MYPY, "mypy not installed (Debian: apt-get install mypy)")
        r = run(str(MYPY), "--strict", "--cache-dir", MYPY_CACHE, "--python-version", "3.11", SOURCES)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_standard_library_only(self) -> None:
        for name in sorted(os.listdir(SOURCES)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(SOURCES, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                for m in mods:
                    self.assertIn(m.split(".")[0], sys.stdlib_module_names, f"{name} imports {m}")

    def test_wheel_and_sdist_are_complete_and_reproducible(self) -> None:
        spec = importlib.util.spec_from_file_location(
            "tokendist_build", os.path.join(PACKAGE_DIR, "build_backend", "tokendist_build.py"))
        assert spec and spec.loader
        backend = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(backend)
        out1, out2 = self.tempdir(), self.tempdir()
        whl = backend.build_wheel(out1)
        self.assertEqual(whl, backend.build_wheel(out2))
        with open(os.path.join(out1, whl), "rb") as a, open(os.path.join(out2, whl), "rb") as b:
            self.assertEqual(a.read(), b.read(), "two builds give the same bytes")
        import tokendist_client
        self.assertEqual(whl, f"tokendist_client-{tokendist_client.__version__}-py3-none-any.whl")
        with zipfile.ZipFile(os.path.join(out1, whl)) as z:
            names = set(z.namelist())
            info = f"tokendist_client-{tokendist_client.__version__}.dist-info"
            meta = z.read(f"{info}/METADATA").decode()
        py = {f"tokendist_client/{n}" for n in os.listdir(SOURCES) if n.endswith(".py")}
        self.assertEqual(names, py | {"tokendist_client/py.typed", f"{info}/METADATA",
                                      f"{info}/WHEEL", f"{info}/RECORD"})
        self.assertIn("Requires-Python: >=3.11\n", meta)
        self.assertIn("Name: tokendist-client\n", meta)
        requires = [line for line in meta.splitlines() if line.startswith(("Requires-Dist", "Provides-Extra"))]
        self.assertEqual(requires, ["Provides-Extra: sealed", 'Requires-Dist: cryptography>=38; extra == "sealed"'],
                         "no dependencies but the optional one of a sealed Gitee copy")
        sdist = backend.build_sdist(out1)
        with tarfile.open(os.path.join(out1, sdist)) as t:
            members = set(t.getnames())
        top = sdist[:-len(".tar.gz")]
        for f in ("pyproject.toml", "README.md", "PKG-INFO", "build_backend/tokendist_build.py",
                  "tokendist_client/py.typed", "tokendist_client/client.py"):
            self.assertIn(f"{top}/{f}", members)

    @needs_bin
    def test_installs_offline_into_a_fresh_venv(self) -> None:
        work = self.tempdir()
        venv = os.path.join(work, "v")
        r = run(sys.executable, "-m", "venv", venv)
        self.assertEqual(r.returncode, 0, r.stderr)
        py = os.path.join(venv, "bin", "python")
        # exactly what README.md tells people, with the index switched off: offline
        r = run(os.path.join(venv, "bin", "pip"), "install", "--no-build-isolation", PACKAGE_DIR,
                env={"PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        srv = self.server()
        rec = make_record()
        srv.push(rec)
        script = os.path.join(work, "use.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(f"""
                import tokendist_client
                from tokendist_client import create_client
                CONFIG = {{"TENCENT_CLOUD_ENABLED": True,
                           "TENCENT_CLOUD_API_URL": "{srv.url}/release/get-token"}}
                token = create_client(CONFIG).get_access_token()
                print(tokendist_client.__file__)
                print(token == {rec["access_token"]!r})
            """))
        r = run(py, script, env={"PYTHONPATH": ""}, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        where, same = r.stdout.split()
        self.assertTrue(where.startswith(venv), f"imported from {where}")
        self.assertEqual(same, "True")

        if MYPY is None:
            if os.environ.get("TOKENDIST_REQUIRE_MYPY") == "1":
                self.fail("mypy not installed (Debian: apt-get install mypy)")
            self.skipTest("mypy not installed: the installed package's types were not checked")
        good = os.path.join(work, "good.py")
        bad = os.path.join(work, "bad.py")
        with open(good, "w", encoding="utf-8") as f:
            f.write(USER_CODE)
        with open(bad, "w", encoding="utf-8") as f:
            f.write(USER_MISTAKES)
        # the installed copy (py.typed in site-packages), not the source tree
        env = {"MYPYPATH": "", "PYTHONPATH": ""}
        r = run(MYPY, "--strict", "--cache-dir", MYPY_CACHE,
                "--python-executable", py, good, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run(MYPY, "--strict", "--cache-dir", MYPY_CACHE,
                "--python-executable", py, bad, env=env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for line in ("bad.py:3: error", "bad.py:4: error", "bad.py:5: error"):
            self.assertIn(line, r.stdout)
