"""What the tests share: the ``bench`` CLI as a subprocess, and real runs through it.

Every test that runs ``bench`` goes through :func:`bench`: the test session's
environment (its ``BENCH_TEST_SESSION`` tag, so the leftover check sees what it starts),
a bounded time, and on a timeout a SIGTERM first (:func:`tests.conftest.stop_bench`), so
the harness's own teardown removes the servers it started before the test fails.

The real runs many tests only *read* are made once per session in ``conftest.py``
(``io_sweep``, ``cpu_run``, ``sse_run``, ``websocket_run``, ``compare_runs``,
``saturated_run``); a test that needs a run of its own (interrupted, open loop, a
failing server) makes it with :func:`run_bench`.

``bench`` as users install it (a wheel built from this checkout, in a venv outside it,
run from a folder that is not the checkout) is :func:`build_wheel`, :func:`install_wheel`
and :func:`tool`.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness import PROJECT_ROOT
from harness import cli as harness_cli
from harness.report import find_browser
from harness.scenarios import SCENARIOS_DIR
from tests import alone
from tests.conftest import project_processes, stop_bench

if TYPE_CHECKING:
    from harness.runner import RunPlan
    from harness.servers import ServerConfig

BENCH = [sys.executable, "-m", "harness.cli"]


#: Commands that read stored runs or the registry and start nothing that outlives them:
#: :func:`bench` runs these (and ``run`` and ``cross-check``, which stop the servers they
#: start and let their CPU locks go in a ``finally``) in this process (:func:`cli`).
IN_PROCESS = frozenset({"list", "report", "compare", "export", "check", "history", "publish",
                        "cross-check"})


def bench(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
          cwd: Path | None = None, columns: int = 250) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` with this session's environment plus ``env``; stdout and stderr
    captured as text. The commands in :data:`IN_PROCESS` and ``run`` run in this process
    (:func:`cli`: the same entry point, exit code and output, without a Python start and
    its imports: ~1.2 s a call, ~2.3 s for ``run``, whose runner imports pandas and
    scipy; ``timeout`` is then pytest-timeout's, whose SIGALRM lands in the runner's
    teardown like a Ctrl-C); every other command (``agent``, ``clean``, ``docker``, ...)
    in a subprocess, which on a timeout is stopped SIGTERM first (so its servers go with
    it) before :class:`subprocess.TimeoutExpired` is raised. A test that signals or
    watches the ``bench`` process itself uses :func:`bench_process`."""
    if args and (args[0] in IN_PROCESS or args[0] == "run"):
        return cli(*args, env=env, cwd=cwd, columns=columns)
    return bench_process(*args, timeout=timeout, env=env, cwd=cwd, columns=columns)


def bench_process(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
                  cwd: Path | None = None, columns: int = 250
                  ) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` in a subprocess (see :func:`bench`)."""
    check_load(args)
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


def check_load(args: tuple[str, ...]) -> None:
    """A ``bench`` subprocess that will load the machine needs a test that holds it alone
    (tests/alone.py; in this process the runner's own spawn of locust is checked)."""
    if alone.loads(args):
        alone.check(f"bench {args[0]}")


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        columns: int = 250) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` in this process: ``harness.cli``'s entry point with ``sys.argv``, the
    environment (plus ``env``), the working folder and the consoles' width set as a
    subprocess would have them, stdout and stderr captured, all restored afterwards. An
    exception escaping ``main`` comes back as its traceback on stderr and exit code 1, as
    from a process, so ``"Traceback" not in r.stderr`` means the same in both."""
    import contextlib
    import importlib
    import io
    import traceback

    from rich.console import Console

    for module in sorted(Path(harness_cli.__file__).parent.glob("cli_*.py")):
        importlib.import_module(f"harness.{module.stem}")  # their consoles exist now
    consoles = [obj for name, mod in list(sys.modules.items())
                if name.startswith("harness") and mod is not None
                for obj in vars(mod).values() if isinstance(obj, Console)]
    widths = [c._width for c in consoles]
    # Text streams over bytes: a command may write bytes to sys.stdout.buffer.
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
                for _ in range(2))
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    saved_cpus = os.sched_getaffinity(0)  # `run` pins its process to the load CPUs
    code = 0
    try:
        os.environ.update({"COLUMNS": str(columns), **(env or {})})
        sys.argv = ["bench", *args]
        if cwd is not None:
            os.chdir(cwd)
        for c in consoles:
            c.width = columns
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                # _main, not main: main's last step stops every process group this
                # process started (a test's own servers too); `run` stops its own in
                # its finally, the other commands start none.
                harness_cli._main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # noqa: BLE001 - what a process would print before dying
                traceback.print_exc()
                code = 1
    finally:
        os.sched_setaffinity(0, saved_cpus)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        for c, w in zip(consoles, widths, strict=True):
            c._width = w
    texts = [stream.buffer.getvalue().decode("utf-8") for stream in (out, err)]  # type: ignore[attr-defined]
    return subprocess.CompletedProcess(["bench", *args], code, *texts)


def only_run(results: Path) -> Path:
    """The one run folder under ``results``."""
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


def run_bench(base: Path, *args: str, timeout: float = 300,
              env: dict[str, str] | None = None, report: bool = True) -> Path:
    """``bench run ARGS`` (environment plus ``env``) into ``base/results`` (report
    ``base/r.html``, or ``--no-report`` for a test that reads only the run folder: ~0.8 s
    less); asserts it exited 0 without a traceback; the run folder."""
    page = ("--report", str(base / "r.html")) if report else ("--no-report",)
    r = bench("run", *args, "--results-dir", str(base / "results"), *page, timeout=timeout,
              env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    if not report:  # --no-report: no page written, none named
        assert "report:" not in r.stdout and not list(base.glob("*.html")), r.stdout
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


def real_run(base: Path, *args: str, attempts: int = 4, timeout: float = 300,
             statuses: tuple[str, ...] = ("ok",), report: bool = True) -> Path:
    """``bench run ARGS`` until every trial's status is one of ``statuses``; the run folder.
    A busy machine (other processes on the load CPU) makes the harness mark trials
    invalid, rightly; such a run is retried (after waiting for quiet CPUs), not used.

    Four attempts: on a shared 2-core VM the io sweep (16 trials of 1.25 s after a fixed
    0.5 s warm-up) had a trial not steady in 4 of 11 attempts, so three attempts would
    all fail about once in 20 suites; four, about once in 60. A retry costs time only in
    the suite that needs it."""
    import pandas as pd

    problems = ""
    for attempt in range(attempts):
        if attempt:
            wait_for_quiet_cpus()
        run_dir = run_bench(base / f"attempt{attempt}", *args, timeout=timeout, report=report)
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


# --- bench as an installed tool (a wheel in a venv outside the checkout) ----------------


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


def install_wheel(wheel: Path, venv: Path) -> Path:
    """A fresh venv at ``venv`` (outside the checkout, no system site-packages) with
    ``wheel`` installed by pip; its bin folder, holding the ``bench`` console script.

    By default the wheel goes in with ``pip install --no-deps`` and the closure of its
    ``Requires-Dist`` is linked in from the distributions this test session runs with
    (seconds instead of a minute of resolving and unpacking ~80 distributions); ``pip
    check`` then confirms every requirement there is met. ``BENCH_WHEEL_FULL_INSTALL=1``
    makes it a real ``pip install`` of the wheel with its dependencies."""
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
    return venv / "bin"


def tool_env() -> dict[str, str]:
    """This session's environment minus anything pointing at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    return {**env, "COLUMNS": "200"}


def tool(bin_dir: Path, cwd: Path, *args: str,
         timeout: float = 280) -> subprocess.CompletedProcess[str]:
    """``bench ARGS`` of the installed venv, run in ``cwd`` (stopped SIGTERM first on a
    timeout, so its servers go with it)."""
    check_load(args)
    proc = subprocess.Popen([str(bin_dir / "bench"), *args], cwd=cwd, env=tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        stop_bench(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


# --- the CLI in this process -------------------------------------------------------------

#: A scenario file's text: ``.format(name=, users=, warmup=, duration=)``.
SCENARIO = """\
name = "{name}"
protocol = "http"
[request]
path = "/io"
[params.latency_ms]
type = "int"
default = 5
min = 0
max = 100
[load]
users = {users}
warmup_s = {warmup}
duration_s = {duration}
repeats = 1
[slo]
p99_ms = 100
max_error_rate = 0.01
[validity]
max_error_rate = 0.05
max_generator_cpu_percent = 90
"""



def bench_here(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          *args: str) -> tuple[int, str, str]:
    """Run ``bench ARGS`` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    capsys.readouterr()
    try:
        harness_cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err



# --- shipped scenarios, the docker engine, run plans --------------------------------------

SHIPPED = ["cpu-heavy", "db-io", "db-rows", "io-heavy", "sse-stream", "upstream-http",
           "websocket-echo"]


def own_scenario(folder: Path, name: str, users: str = "[3]") -> Path:
    """A copy of io-heavy named ``name`` with its own levels."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (SCENARIOS_DIR / "io-heavy.toml").read_text()
    text = "\n".join(f"users = {users}" if line.startswith("users =") else line
                     for line in text.splitlines() if not line.startswith("name ="))
    path = folder / f"{name}.toml"
    path.write_text(text + "\n")
    return path


def _engine_problem() -> str:
    try:
        r = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30,
                           check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info could not run: {exc}"
    return "" if r.returncode == 0 else f"docker info failed: {r.stderr.strip()[:200]}"


ENGINE_PROBLEM = _engine_problem()
needs_engine = pytest.mark.skipif(bool(ENGINE_PROBLEM),
                                  reason=f"no Docker engine here ({ENGINE_PROBLEM})")



def plan(tmp_path: Path, servers: list[ServerConfig], **kw: Any) -> RunPlan:
    """A run plan (for ``Runner`` in-process): io-heavy at 20 ms, 4 users, one repeat, server
    on CPU 0 and load on CPU 1; ``kw`` overrides any field."""
    from harness.runner import RunPlan
    from harness.scenarios import load

    base: dict[str, Any] = {
        "scenario": load("io-heavy").with_params({"latency_ms": "20"}), "servers": servers,
        "users": (4,), "warmup_s": 0.5, "duration_s": 2.0, "repeats": 1, "workers": 1,
        "server_cpus": [0], "load_cpus": [1], "results_dir": tmp_path}
    base.update(kw)
    return RunPlan(**base)  # type: ignore[arg-type]


def server_pids(run_id: str) -> list[psutil.Process]:
    """Live server processes of run ``run_id`` (locust left out)."""
    return [p for p in project_processes(run_id) if "locust" not in " ".join(p.cmdline())]


def dead_identity() -> dict[str, Any]:
    """The recorded identity (``procs.identity``) of a process that has exited: a harness
    killed mid-run, as a run's ``harness`` entry records it."""
    from harness import procs

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        recorded = procs.identity(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert recorded is not None
    return recorded


# --- a server's SSE stream, read as it arrives -------------------------------------------


def read_sse_events(port: int, path: str
                    ) -> tuple[int, dict[str, str], bytes, list[tuple[int, int]]]:
    """GET ``path``, reading the body as it arrives (``read1`` returns what is there).

    Returns status, headers, body and, per event, (client receipt ns, server send ns).
    """
    import http.client

    from harness.apps.work import parse_sse_data

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = b""
        arrivals: list[tuple[int, int]] = []
        while piece := resp.read1(65536):
            now = time.time_ns()
            body += piece
            for frame in body.split(b"\n\n")[len(arrivals):-1]:
                data = frame.split(b"\n")[1][len(b"data: "):]
                arrivals.append((now, parse_sse_data(data)[1]))
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, arrivals
    finally:
        conn.close()
