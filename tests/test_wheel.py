"""bench as an installed tool: a wheel built from this checkout, installed into a fresh
virtualenv outside it, runs from an empty directory (issue 17's acceptance).

A full ``pip install bench.whl`` resolves and unpacks ~80 distributions (pandas, scipy,
plotly, gevent, ...): 68 s on 2 busy cores with pip's cache warm. This test proves the
same things in a few seconds:

- **the wheel is what pip installs**: built with ``pip wheel``, installed with ``pip
  install --no-deps`` into a venv made with ``python -m venv`` (no system site-packages),
  which also writes the ``bench`` console script;
- **its declared dependencies suffice**: the closure of the wheel's ``Requires-Dist``
  (markers and extras evaluated with ``packaging``) is linked into the venv from the
  distributions this test runs with, and nothing else: an import of an undeclared package
  fails; ``pip check`` in the venv confirms every requirement of every distribution
  there is met at its declared version;
- **nothing comes from the checkout**: ``harness`` is imported from the venv, the
  checkout is not on ``sys.path``, the working directory is an empty temp folder.

``BENCH_WHEEL_FULL_INSTALL=1`` replaces the linking by a real ``pip install`` of the
wheel with its dependencies (an index or a warm pip cache needed; about a minute).
"""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness import PROJECT_ROOT
from tests.conftest import stop_bench

SHIPPED = ("io-heavy", "cpu-heavy", "sse-stream", "websocket-echo", "db-io", "db-rows",
           "upstream-http")
#: Files the wheel must carry for bench to run from any directory.
DATA = ("harness/scenarios/io-heavy.toml", "harness/loadgen/locustfile.py",
        "harness/apps/Dockerfile", "harness/backends/compose.yaml")


def build_wheel(out: Path) -> Path:
    """``pip wheel --no-deps`` of this checkout into ``out`` (setuptools of this
    environment, no isolated build env: offline, ~2 s); the wheel's path."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", str(PROJECT_ROOT), "-w", str(out)],
                   check=True, capture_output=True, text=True, timeout=180)
    (wheel,) = out.glob("bench-*.whl")
    return wheel


def requires(wheel: Path) -> list[Requirement]:
    """The wheel's own ``Requires-Dist``."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(name))
    return [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def closure(roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions the requirements ``roots`` need, transitively: each
    requirement's marker evaluated for the extras asked of its distribution (none for
    the roots), each found distribution's version checked against the specifier."""
    found: dict[str, metadata.Distribution] = {}
    extras_done: set[tuple[str, str]] = set()
    todo = [(r, "") for r in roots]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = found.get(name) or metadata.distribution(req.name)
        assert req.specifier.contains(dist.version, prereleases=True), (str(req), dist.version)
        new = [e for e in ("", *sorted(req.extras)) if (name, e) not in extras_done]
        found[name] = dist
        for e in new:
            extras_done.add((name, e))
            todo.extend((Requirement(r), e) for r in dist.requires or [])
    return found


def link_into(site: Path, dists: dict[str, metadata.Distribution]) -> int:
    """Symlink each distribution's top-level entries (packages, modules, its dist-info;
    scripts outside site-packages left out: bench runs everything with ``python -m``)
    into ``site``; how many links were made."""
    made = 0
    for dist in dists.values():
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or []} - {".."}
        for top in sorted(tops):
            if (base / top).exists() and not (site / top).exists():
                (site / top).symlink_to(base / top)
                made += 1
    return made


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv (outside the checkout) with the wheel installed; its bin folder."""
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base / "dist")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [f for f in DATA if f not in names]
    assert not missing, f"the wheel lacks {missing}"
    venv = base / "venv"
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    if os.environ.get("BENCH_WHEEL_FULL_INSTALL") == "1":
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                       timeout=900)
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                       timeout=120)
        subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
                       check=True, timeout=120, capture_output=True)
        (site,) = (venv / "lib").glob("python*/site-packages")
        assert link_into(site, closure(requires(wheel))) > 20
    checked = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    yield venv / "bin"


def tool_env() -> dict[str, str]:
    """This session's environment minus anything pointing at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, "COLUMNS": "200"}


def tool(bin_dir: Path, cwd: Path, *args: str,
         timeout: float = 280) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` of the installed venv, run in ``cwd`` (stopped SIGTERM first on a
    timeout, so its servers go with it)."""
    proc = subprocess.Popen([str(bin_dir / "bench"), *args], cwd=cwd, env=tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        stop_bench(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_the_installed_tool_imports_nothing_from_the_checkout(installed: Path,
                                                              tmp_path: Path) -> None:
    code = "import harness, json, sys; print(json.dumps([harness.__file__, sys.path]))"
    r = subprocess.run([str(installed / "python"), "-c", code],
                       cwd=tmp_path, env=tool_env(), capture_output=True, text=True,
                       timeout=60, check=True)
    module, path = json.loads(r.stdout)
    assert Path(module).is_relative_to(installed.parent), module
    assert str(PROJECT_ROOT) not in path and "" not in path[1:], path


def test_from_an_empty_directory_it_lists_and_runs(installed: Path, tmp_path: Path) -> None:
    """The acceptance: ``bench list scenarios`` shows every shipped scenario; the
    short real run completes and writes ./results and ./reports there; outside any git
    work tree the run records no commit (nulls, no error)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = tool(installed, empty, "list", "scenarios")
    assert listed.returncode == 0, listed.stderr
    assert all(name in listed.stdout for name in SHIPPED), listed.stdout
    as_json = json.loads(tool(installed, empty, "list", "scenarios", "--json").stdout)
    assert sorted(s["name"] for s in as_json["scenarios"]) == sorted(SHIPPED)
    assert all(Path(s["file"]).is_relative_to(installed.parent) for s in as_json["scenarios"])
    assert list(empty.iterdir()) == []  # listing writes nothing

    started = time.monotonic()
    r = tool(installed, empty, "run", "--scenario", "io-heavy", "--servers", "uvicorn",
             "--users", "10", "--duration", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    (run_dir,) = (empty / "results").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    # ok, or invalid when other jobs load the machine: measured either way, never failed
    assert [t["status"] in ("ok", "invalid") for t in meta["trials"]] == [True], meta["trials"]
    assert meta["git"] == {"commit": None, "dirty": None, "work_tree": None}
    assert meta["versions"]["bench"] == "0.1.0"
    assert (empty / "reports" / f"{run_dir.name}.html").is_file()
    assert sorted(p.name for p in empty.iterdir()) == ["reports", "results"]
    print(f"installed bench run: {time.monotonic() - started:.1f} s")
