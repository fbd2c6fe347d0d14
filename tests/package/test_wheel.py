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

import json
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from harness import PROJECT_ROOT
from tests.support import tool, tool_env

SHIPPED = ("io-heavy", "cpu-heavy", "sse-stream", "websocket-echo", "db-io", "db-rows",
           "upstream-http")
#: Files the wheel must carry for bench to run from any directory.
DATA = ("harness/scenarios/io-heavy.toml", "harness/loadgen/locustfile.py",
        "harness/apps/Dockerfile", "harness/backends/compose.yaml")


@pytest.fixture(scope="module")
def installed(installed_wheel: tuple[Path, Path]) -> Path:
    """The session's venv with the wheel installed (conftest.installed_wheel), the wheel
    checked to hold the package data; its bin folder."""
    wheel, bin_dir = installed_wheel
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    missing = [f for f in DATA if f not in names]
    assert not missing, f"the wheel lacks {missing}"
    return bin_dir


@pytest.mark.slow
def test_the_installed_tool_imports_nothing_from_the_checkout(installed: Path,
                                                              tmp_path: Path) -> None:
    code = "import harness, json, sys; print(json.dumps([harness.__file__, sys.path]))"
    r = subprocess.run([str(installed / "python"), "-c", code],
                       cwd=tmp_path, env=tool_env(), capture_output=True, text=True,
                       timeout=60, check=True)
    module, path = json.loads(r.stdout)
    assert Path(module).is_relative_to(installed.parent), module
    assert str(PROJECT_ROOT) not in path and "" not in path[1:], path


@pytest.mark.alone
@pytest.mark.slow
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
