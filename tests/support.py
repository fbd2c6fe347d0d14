"""What the tests share: the ``bench`` CLI as a subprocess, and real runs through it.

Every test that runs ``bench`` goes through :func:`bench`: the test session's
environment (its ``BENCH_TEST_SESSION`` tag, so the leftover check sees what it starts),
a bounded time, and on a timeout a SIGTERM first (:func:`tests.conftest.stop_bench`), so
the harness's own teardown removes the servers it started before the test fails.

The real runs many tests only *read* are made once per session in ``conftest.py``
(``io_sweep``, ``cpu_run``, ``sse_run``, ``websocket_run``); a test that needs a run of
its own (interrupted, open loop, a saturated generator) makes it with :func:`run_bench`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import psutil
import pytest

from harness.report import find_browser
from tests.conftest import stop_bench

BENCH = [sys.executable, "-m", "harness.cli"]


def bench(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
          cwd: Path | None = None, columns: int = 250) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` in a subprocess, with this session's environment plus ``env``;
    stdout and stderr captured as text. On a timeout it is stopped SIGTERM first (so its
    servers go with it) and :class:`subprocess.TimeoutExpired` is raised."""
    proc = subprocess.Popen([*BENCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd,
                            env={**os.environ, "COLUMNS": str(columns), **(env or {})})
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_bench(proc)
        raise
    finally:
        stop_bench(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def only_run(results: Path) -> Path:
    """The one run folder under ``results``."""
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def run_bench(base: Path, *args: str, timeout: float = 300) -> Path:
    """``bench run ARGS`` into ``base/results`` (report ``base/r.html``); asserts it exited
    0 without a traceback; the run folder."""
    r = bench("run", *args, "--results-dir", str(base / "results"),
              "--report", str(base / "r.html"), timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return only_run(base / "results")


def wait_for_quiet_cpus(limit_percent: float = 30.0, quiet_s: int = 3,
                        timeout_s: float = 30.0) -> None:
    """Wait (bounded) until every CPU has been below ``limit_percent`` busy for ``quiet_s``
    seconds: on a shared machine other processes on the load CPU make trials invalid."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < quiet_s and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=1.0, percpu=True)
        quiet = quiet + 1 if max(busy) < limit_percent else 0


def real_run(base: Path, *args: str, attempts: int = 3, timeout: float = 300,
             statuses: tuple[str, ...] = ("ok",)) -> Path:
    """``bench run ARGS`` until every trial's status is one of ``statuses``; the run folder.
    A busy machine (other processes on the load CPU) makes the harness mark trials
    invalid, rightly; such a run is retried (after waiting for quiet CPUs), not used."""
    import pandas as pd

    problems = ""
    for attempt in range(attempts):
        if attempt:
            wait_for_quiet_cpus()
        run_dir = run_bench(base / f"attempt{attempt}", *args, timeout=timeout)
        trials = pd.read_csv(run_dir / "trials.csv", dtype={"reason": str})
        if trials["status"].isin(statuses).all():
            return run_dir
        problems += trials.loc[~trials["status"].isin(statuses), ["status", "reason"]].to_string()
    raise AssertionError(f"no run with every trial {' or '.join(statuses)} in {attempts} "
                         f"attempts:\n{problems}")


def report_of(run_dir: Path) -> Path:
    """The report ``bench run`` wrote for the run in ``run_dir`` (made by :func:`run_bench`)."""
    return run_dir.parent.parent / "r.html"


# --- reading a report page --------------------------------------------------------------


class _Tables(HTMLParser):
    """Every table of a page by id: rows of {header: (text, data-v or None)}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, tuple[str, str | None]]]] = {}
        self._id: str | None = None
        self._heads: list[str] = []
        self._row: list[tuple[str, str | None]] | None = None
        self._cell: list[str] | None = None
        self._v: str | None = None
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._id, self._heads = a.get("id") or f"anon{len(self.tables)}", []
            self.tables[self._id] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._v = [], a.get("data-v")

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag == "th" and self._cell is not None and self._in_head:
            self._heads.append("".join(self._cell))
            self._cell = None
        elif tag == "th" and self._cell is not None and self._row is not None:
            self._row.append(("".join(self._cell), self._v))  # a key-value table's key
            self._cell = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(("".join(self._cell), self._v))
            self._cell = None
        elif tag == "tr" and self._row and self._id is not None:
            heads = self._heads or [str(i) for i in range(len(self._row))]
            self.tables[self._id].append(dict(zip(heads, self._row, strict=True)))
            self._row = None


def tables(text: str) -> dict[str, list[dict[str, tuple[str, str | None]]]]:
    parser = _Tables()
    parser.feed(text)
    return parser.tables


# --- headless Chromium ------------------------------------------------------------------

CHROMIUM = find_browser()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium/Chrome (apt-get install chromium, or set BROWSER_PATH)")
#: A drawn data point or line segment of a plotly trace, as plotly writes it into the DOM.
_DRAWN = re.compile(r'<path class="(?:js-line|point)"[^>]*\sd="M')


def open_in_chromium(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium, let its scripts run (virtual time), and return
    (the DOM as serialized after them, the page's console messages)."""
    assert CHROMIUM is not None
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=20000", f"--user-data-dir={profile}",
         "--window-size=1400,1000", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    return r.stdout, console


def chart_problems(dom: str) -> dict[str, str]:
    """Per plotly chart div of ``dom`` (its id), what is wrong with it: no SVG drawn, or
    an SVG without a single drawn point or line. Empty when every chart has data."""
    starts = [(m.start(), m.group(1)) for m in
              re.finditer(r'<div id="([^"]+)" class="plotly-graph-div', dom)]
    problems: dict[str, str] = {}
    for (start, chart), (end, _) in zip(starts, [*starts[1:], (len(dom), "")], strict=True):
        region = dom[start:end]
        if 'class="main-svg"' not in region:
            problems[chart] = "no SVG: plotly did not draw it"
        elif not _DRAWN.search(region):
            problems[chart] = "drawn without data"
    return problems
