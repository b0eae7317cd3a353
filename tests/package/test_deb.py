"""The Debian packages: `dpkg-buildpackage -us -uc -b` builds them from a
copy of the tree (the repository is never touched), offline, with build
dependencies from apt; each package holds what it should -- the docs under
the names the man pages and the docs' own links use, not gzipped; the
program, unpacked with `dpkg -x` into an empty scratch root, runs from
there; and the build leaves nothing in the tree that .gitignore does not
cover.  Slow (a full build): ctest label `package`."""
import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ["dpkg-buildpackage", "dh", "fakeroot"]
DOC = "/usr/share/doc/tokendist/"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def untracked(tree):
    """Files git would offer to add in tree (not ignored), or None without git."""
    r = subprocess.run(["git", "-C", tree, "ls-files", "-z", "--others", "--exclude-standard"],
                       capture_output=True)
    return set(filter(None, r.stdout.decode().split("\0"))) if r.returncode == 0 else None


def package_path(repo_path):
    """Where a file of the tree is in the tokendist package: docs/ and the
    tree's root are both DOC (the docs sit side by side under the names the
    man page uses), man pages are man pages."""
    if repo_path.startswith("man/"):
        name = repo_path.split("/", 1)[1]
        return "/usr/share/man/man%s/%s.gz" % (name.rsplit(".", 1)[1], name)
    if repo_path.startswith("docs/"):
        return DOC + repo_path.split("/", 1)[1]
    return DOC + repo_path


def missing_tools():
    return [t for t in TOOLS if not shutil.which(t)]


def changelog_version():
    with open(os.path.join(ROOT, "debian", "changelog"), encoding="utf-8") as f:
        return re.match(r"tokendist \(([^)]+)\)", f.readline()).group(1)


@unittest.skipIf(missing_tools(), "needs %s (apt-get install dpkg-dev debhelper fakeroot)"
                 % ", ".join(missing_tools()))
class DebPackageTest(unittest.TestCase):
    maxDiff = None
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tokendist-deb-")
        src = os.path.join(cls.tmp, "tokendist")
        os.mkdir(src)
        # The tracked files and the new ones not ignored: what a commit
        # of this tree would hold, without build products.  Outside a git
        # work tree (an exported tarball), everything but build folders.
        files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                                "--exclude-standard"], capture_output=True)
        if files.returncode == 0:
            for rel in filter(None, files.stdout.decode().split("\0")):
                if os.path.isfile(os.path.join(ROOT, rel)):
                    os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                    shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel))
        else:
            os.rmdir(src)
            shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
                "build*", "obj-*", "var", ".git", "__pycache__", "node_modules"))
        # A git work tree of its own, to see what the build leaves behind
        # that .gitignore (copied with the rest) does not cover.
        cls.git = bool(shutil.which("git")) and subprocess.run(
            ["git", "init", "-q", src], capture_output=True).returncode == 0
        cls.untracked_before = untracked(src) if cls.git else None
        env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % (os.cpu_count() or 1), LC_ALL="C.UTF-8")
        p = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1200)
        cls.log = p.stdout + p.stderr
        if p.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise AssertionError("dpkg-buildpackage failed:\n" + cls.log[-6000:])
        cls.untracked_after = untracked(src) if cls.git else None
        cls.src = src
        cls.version = changelog_version()
        cls.debs = {os.path.basename(d).split("_")[0]: d for d in glob.glob(os.path.join(cls.tmp, "*.deb"))}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def contents(self, pkg):
        out = subprocess.run(["dpkg-deb", "-c", self.debs[pkg]], capture_output=True, text=True,
                             check=True).stdout
        return {line.split()[5].lstrip(".") for line in out.splitlines()}

    def field(self, pkg, name):
        return subprocess.run(["dpkg-deb", "-f", self.debs[pkg], name], capture_output=True, text=True,
                              check=True).stdout.strip()

    def test_packages_and_files(self):
        for pkg in ("tokendist", "libtokendist1", "libtokendist-dev"):
            self.assertIn(pkg, self.debs)
            self.assertEqual(os.path.basename(self.debs[pkg]).split("_")[1], self.version)
        files = self.contents("tokendist")
        for path in ("/usr/bin/tokendist", "/lib/systemd/system/tokendist.service",
                     "/lib/systemd/system/tokendist-refresh.service",
                     "/usr/share/man/man1/tokendist.1.gz", "/usr/share/man/man5/tokendist.env.5.gz",
                     "/usr/share/bash-completion/completions/tokendist",
                     "/usr/share/doc/tokendist/examples/tokendist.env", "/etc/tokendist/"):
            self.assertIn(path, files)
        lib = self.contents("libtokendist1")
        self.assertTrue(any(re.search(r"/usr/lib/[^/]+/libtokendist\.so\.1$", f) for f in lib), lib)
        dev = self.contents("libtokendist-dev")
        for pat in (r"/usr/include/tokendist\.h$", r"/libtokendist\.so$", r"/libtokendist\.a$",
                    r"/pkgconfig/tokendist\.pc$"):
            self.assertTrue(any(re.search(pat, f) for f in dev), pat)
        # Nothing of the server in the library packages, no library in the program's.
        self.assertFalse(any("libtokendist" in f for f in files))
        self.assertEqual(self.field("libtokendist-dev", "Depends").split(",")[0],
                         "libtokendist1 (= %s)" % self.version)
        # Shared-library dependencies computed by dpkg-shlibdeps.
        deps = self.field("tokendist", "Depends")
        for lib in ("libmicrohttpd12", "libsqlite3-0", "libjansson4", "libcurl4"):
            self.assertIn(lib, deps)

    def test_docs_under_the_names_they_are_given(self):
        files = self.contents("tokendist")
        # No doc gzipped: the man page says protocol.md, not protocol.md.gz.
        self.assertEqual(sorted(f for f in files if f.startswith(DOC) and re.search(r"\.(md|json|yml)\.gz$", f)), [])
        # Every path the man pages name under the doc folder, and the files
        # tokendist.1 names next to protocol.md.
        named = set()
        for page in glob.glob(os.path.join(ROOT, "man", "*.[15]")):
            with open(page, encoding="utf-8") as f:
                text = f.read()
            named |= set(re.findall(r"/usr/share/doc/tokendist/[A-Za-z0-9_./-]*[A-Za-z0-9_]", text))
            named |= {DOC + n for n in re.findall(r"^\.IR? ([a-z-]+\.(?:md|json))\b", text, re.M)}
        self.assertIn(DOC + "protocol.md", named)
        self.assertEqual(sorted(n for n in named if n not in files), [], "named by the man pages, not shipped")
        # deploy.md and every doc of docs/ it leads to, with every link
        # resolving in the package (the READMEs are shipped, but their links
        # are into the source tree: bench/, clients/).
        todo, seen, missing = ["docs/deploy.md"], set(), []
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            if package_path(path) not in files:
                missing.append(path)
                continue
            if not (path.startswith("docs/") and path.endswith(".md")):
                continue
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                for target in LINK.findall(f.read()):
                    if "://" not in target:
                        todo.append(os.path.normpath(os.path.join(os.path.dirname(path), target)))
        self.assertEqual(missing, [], "linked from the shipped docs, not in the package")
        self.assertIn("docs/security.md", seen)

    def test_build_leaves_only_ignored_files(self):
        if not self.git:
            self.skipTest("needs git")
        self.assertEqual(sorted(self.untracked_after - self.untracked_before), [],
                         "dpkg-buildpackage left these in the tree, and .gitignore does not cover them")
        # What scripts/run and the README make in the tree: tokendist.env holds the app secret.
        for rel in ("tokendist.env", "var/push-key", "var/tokendist.db"):
            os.makedirs(os.path.dirname(os.path.join(self.src, rel)), exist_ok=True)
            with open(os.path.join(self.src, rel), "w") as f:
                f.write("x\n")
        self.assertEqual(sorted(untracked(self.src) - self.untracked_before), [])

    def test_units_not_started_on_install(self):
        out = subprocess.run(["dpkg-deb", "-I", self.debs["tokendist"], "postinst"], capture_output=True,
                             text=True).stdout
        self.assertIn("tokendist.service", out)
        self.assertNotIn("deb-systemd-invoke start", out)

    def test_runs_from_scratch_root(self):
        root = os.path.join(self.tmp, "root")
        for pkg in ("tokendist", "libtokendist1", "libtokendist-dev"):
            subprocess.run(["dpkg", "-x", self.debs[pkg], root], check=True)
        libdirs = glob.glob(os.path.join(root, "usr", "lib", "*"))
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
        r = subprocess.run([os.path.join(root, "usr", "bin", "tokendist"), "--version"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "tokendist %s\n" % self.version), r.stderr)
        r = subprocess.run([os.path.join(root, "usr", "bin", "tokendist"), "serve", "--print-config"],
                           env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("TOKENDIST_LISTEN=127.0.0.1:9000\n", r.stdout)
        # A release build: the test clock (src/clock.h) is compiled into
        # neither the program nor the library.
        for path in [os.path.join(root, "usr", "bin", "tokendist")] + \
                glob.glob(os.path.join(root, "usr", "lib", "*", "libtokendist.so.0*")):
            with open(path, "rb") as f:
                self.assertNotIn(b"TOKENDIST_TEST_CLOCK_FILE", f.read(), path)


if __name__ == "__main__":
    unittest.main()
