"""The PEP 517 build backend of tokendist-client: standard library only.

Why not setuptools: the package must install offline into a fresh venv
(``python3 -m venv v && v/bin/pip install --no-build-isolation
./clients/python``).  Such a venv holds pip and setuptools but not
``wheel``, and setuptools before 70.1 cannot build a wheel without it, so
the setuptools backend fails there ("invalid command 'bdist_wheel'").  A
pure-Python package with no compiled parts needs little: this file writes
the wheel (a zip with the package, METADATA, WHEEL and RECORD), the sdist
and the editable wheel of PEP 660 from ``[project]`` in pyproject.toml.

Archives are reproducible: fixed file order and timestamps
(``SOURCE_DATE_EPOCH`` when set).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import tomllib
import zipfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tokendist_client"
SDIST_FILES = ("pyproject.toml", "README.md", "build_backend/tokendist_build.py")


def _project() -> dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project: dict[str, Any] = dict(tomllib.load(f)["project"])
    if "version" in project.get("dynamic", []):
        with open(os.path.join(ROOT, PACKAGE, "__init__.py"), encoding="utf-8") as f:
            m = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.M)
        if not m:
            raise RuntimeError(f"{PACKAGE}/__init__.py has no __version__")
        project["version"] = m.group(1)
    return project


def _dist_name(project: dict[str, Any]) -> str:
    return re.sub(r"[-_.]+", "_", project["name"]).lower() + "-" + project["version"]


def _metadata(project: dict[str, Any]) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}",
             f"Version: {project['version']}", f"Summary: {project.get('description', '')}"]
    if "license" in project:
        lines.append(f"License: {project['license'].get('text', '')}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    for label, url in project.get("urls", {}).items():
        lines.append(f"Project-URL: {label}, {url}")
    lines += [f"Keywords: {','.join(project.get('keywords', []))}"]
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {d}; extra == "{extra}"' for d in deps]
    text = "\n".join(lines) + "\n"
    readme = project.get("readme")
    if readme:
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            text += "Description-Content-Type: text/markdown; charset=UTF-8\n\n" + f.read()
    return text.encode("utf-8")


def _package_files() -> list[str]:
    out = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        out += [os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, "/")
                for f in sorted(files) if f.endswith((".py", ".typed"))]
    return out


def _mtime() -> int:
    return max(int(os.environ.get("SOURCE_DATE_EPOCH", "315532800")), 315532800)  # ≥ 1980


def _dist_info(project: dict[str, Any]) -> dict[str, bytes]:
    wheel = ("Wheel-Version: 1.0\nGenerator: tokendist_build\nRoot-Is-Purelib: true\n"
             "Tag: py3-none-any\n")
    return {"METADATA": _metadata(project), "WHEEL": wheel.encode("ascii")}


def _write_wheel(directory: str, entries: list[tuple[str, bytes]], project: dict[str, Any]) -> str:
    dist = _dist_name(project)
    info = f"{dist}.dist-info"
    entries = entries + [(f"{info}/{n}", data) for n, data in _dist_info(project).items()]
    record = io.StringIO()
    for name, data in entries:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{name},sha256={digest},{len(data)}\n")
    record.write(f"{info}/RECORD,,\n")
    entries.append((f"{info}/RECORD", record.getvalue().encode("utf-8")))
    filename = f"{dist}-py3-none-any.whl"
    stamp = time.gmtime(_mtime())[:6]
    with zipfile.ZipFile(os.path.join(directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            zi = zipfile.ZipInfo(name, date_time=stamp)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)
    return filename


def _read(rel: str) -> bytes:
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


# -- PEP 517 -----------------------------------------------------------------
def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    return []


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    project = _project()
    info = f"{_dist_name(project)}.dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    for name, data in _dist_info(project).items():
        with open(os.path.join(metadata_directory, info, name), "wb") as f:
            f.write(data)
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: Any = None,
                metadata_directory: str | None = None) -> str:
    return _write_wheel(wheel_directory, [(p, _read(p)) for p in _package_files()], _project())


def build_editable(wheel_directory: str, config_settings: Any = None,
                   metadata_directory: str | None = None) -> str:
    """A wheel holding one .pth line: the source folder goes on sys.path."""
    project = _project()
    pth = (ROOT + "\n").encode("utf-8")
    return _write_wheel(wheel_directory, [(f"__editable__.{_dist_name(project)}.pth", pth)], project)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    project = _project()
    dist = _dist_name(project)
    filename = f"{dist}.tar.gz"
    members = [(f, _read(f)) for f in SDIST_FILES + tuple(_package_files())]
    members.append(("PKG-INFO", _metadata(project)))
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz",
                      format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members):
            ti = tarfile.TarInfo(f"{dist}/{name}")
            ti.size, ti.mtime, ti.mode = len(data), _mtime(), 0o644
            ti.uname = ti.gname = "root"
            tar.addfile(ti, io.BytesIO(data))
    return filename
