from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from harness.atomic import atomic_write_bytes
from harness.servers import SERVERS
from tests import alone

alone.guard_spawn()

# Every process this test session starts (directly or through `bench`) inherits this
# tag (harness.procs.ENV_ALLOW passes it on), so the leftover check sees only ours.
SESSION = uuid.uuid4().hex
os.environ["BENCH_TEST_SESSION"] = SESSION


#: The session's real runs (below); a test that takes one is ``slow``.
SHARED_RUNS = frozenset({"io_sweep", "cpu_run", "sse_run", "websocket_run", "compare_runs",
                         "saturated_run"})
#: Module fixtures that make a real run, serve real streams or install a wheel (a second
#: or more each): a test that takes one is ``slow`` too.
MODULE_RUNS = frozenset({"agents_run", "checked_run", "docker_run", "example", "installed_wheel",
                         "killed_run", "published", "remote_run", "runs",
                         "sse_sync", "sse_uvicorn", "stacks_run"})
#: Those of them that put load on the machine or serve streams a test times: a test that
#: takes one is ``alone`` (tests/alone.py). Not: ``published`` (bench publish of stored
#: runs), ``runs`` (the compare runs, or synthetic ones), ``installed_wheel`` (made with
#: the machine alone, tests.conftest.shared, as the session's runs are).
LOADING_RUNS = MODULE_RUNS - {"installed_wheel", "published", "runs"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what needs a real sweep: a test that takes one of the session's runs
    or of the module fixtures in :data:`MODULE_RUNS` (even through another fixture), and the docker tests that need the engine (they take
    test_docker's ``client`` fixture: an image build, containers, runs inside them).

    Mark ``alone`` (tests/alone.py) what loads the machine: a test that takes a module
    fixture of :data:`LOADING_RUNS` or the docker engine (besides the tests marked so by
    hand); put the ``alone`` tests first, and tell xdist's controller which they are."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        docker = item.module is not None and item.module.__name__.endswith("test_docker")
        engine = docker and "client" in fixtures
        if fixtures & (SHARED_RUNS | MODULE_RUNS) or engine:
            item.add_marker(pytest.mark.slow)
        if fixtures & LOADING_RUNS or engine:
            item.add_marker(pytest.mark.alone)
    items.sort(key=lambda item: not alone.is_alone(item))  # stable: in file order otherwise
    alone.record_alone(items)


def pytest_configure(config: pytest.Config) -> None:
    """On xdist's controller: name the test session (``--testrunuid``) now, so that it
    finds the ``alone`` tests its workers record under that name."""
    if getattr(config.option, "testrunuid", "") is None and not hasattr(config, "workerinput"):
        config.option.testrunuid = uuid.uuid4().hex


@pytest.fixture(autouse=True)
def cpu_locks_apart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A test beside others (not ``alone``) takes its CPU locks in its worker's own lock
    folder: a ``bench run`` it makes stops before any load (else tests/alone.py fails it),
    and two such runs on two workers are not two runs measuring each other."""
    if not alone.is_alone(request.node):
        monkeypatch.setenv("BENCH_LOCK_DIR", str(tmp_path_factory.getbasetemp() / "cpu-locks"))


def pytest_unconfigure(config: pytest.Config) -> None:
    alone.forget(config)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """The ``alone`` tests first, as one unit of work (tests/alone.py)."""
    return alone.make_scheduler(config, log)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outside pytest-timeout's clock
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None
                            ) -> Iterator[object]:
    """Each test holds the machine alone or shares it (tests/alone.py)."""
    alone.before(item)
    try:
        return (yield)
    finally:
        alone.after(item, nextitem)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n logical``: one worker per CPU, at most 4 (the tests beside each other are
    short; the ``alone`` ones run on one worker whatever the count)."""
    return max(1, min(4, psutil.cpu_count(logical=True) or 1))


def project_processes(run_id: str | None = None) -> list[psutil.Process]:
    """Live processes started by this test session (or by one run of it), zombies aside."""
    found = []
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get("BENCH_TEST_SESSION") != SESSION or p.pid == os.getpid():
                continue
            if run_id is not None and env.get("BENCH_RUN_ID") != run_id:
                continue
            if p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After the whole suite, no server or locust process started by it may remain."""
    started = time.time()
    yield
    deadline = time.monotonic() + 10
    left = project_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = project_processes()
    assert not left, f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}"
    containers = project_containers(since=started)
    assert not containers, f"containers left behind: {containers}"


def project_containers(since: float) -> list[str]:
    """Compose containers of bench projects created since ``since`` (epoch s), any state.
    Empty where no docker engine answers."""
    try:
        import docker
        from docker.errors import DockerException

        client = docker.from_env(timeout=10)
        found = client.containers.list(all=True, ignore_removed=True,
                                       filters={"label": "com.docker.compose.project"})
    except (ImportError, DockerException, OSError):
        return []
    from datetime import UTC, datetime

    out = []
    for c in found:
        project = c.labels.get("com.docker.compose.project", "")
        # "2026-11-22T00:10:11.123456789Z": the engine's clock is UTC, nanoseconds cut
        created = datetime.fromisoformat(c.attrs["Created"][:26]).replace(tzinfo=UTC)
        if project.startswith("bench-") and created.timestamp() >= since - 1:
            out.append(f"{c.name} ({project}, {c.status})")
    return out


def stop_bench(proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """End a ``bench`` subprocess a test started, if it still runs: SIGTERM first, so its
    own teardown removes its servers and containers even when the test failed; SIGKILL
    (which would leave them behind) only if it did not exit in ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=30)


@contextlib.contextmanager
def serve(name: str, tmp_path: Path, workers: int = 1) -> Iterator[tuple[int, psutil.Process]]:
    """Start server config ``name`` on a free loopback port, pinned to CPU 0, as the local
    backend deploys it (a server root, a user namespace where the config needs one);
    yield (port, master process). A config that cannot run here (mod-wsgi without
    Apache httpd) skips the test, with the reason."""
    from harness.backends.local import LocalServer

    cannot = SERVERS[name].unsupported(workers=workers)
    if cannot:
        pytest.skip(f"{name}: {cannot}")
    server = LocalServer(SERVERS[name], workers=workers, cpus=[0],
                         log_path=tmp_path / f"{name}.log", clock=time.monotonic)
    try:
        assert server.proc is not None
        yield server.port, psutil.Process(server.proc.pid)
    finally:
        server.stop()


# --- real runs shared by the session --------------------------------------------------
# Tests that only *read* a finished run share these, made once per session on first use
# (``bench run`` through the CLI: real servers, real locust, results on disk). A test
# that needs a run of its own kind (interrupted, open loop, a failing server) makes it
# itself. tests.support imports this module, so the fixtures import it when they run.
# Each is made once per test session, on whichever xdist worker first asks, with the
# machine to itself (:func:`shared`); the test that makes them all is
# tests/e2e/test_shared_runs.py, among the ``alone`` tests.

T = TypeVar("T")


def shared(name: str, factory: pytest.TempPathFactory, make: Callable[[], T]) -> T:
    """``make()`` (paths under ``factory``'s folders) once per test session across its
    xdist workers: the first worker to ask makes it holding the machine alone
    (:func:`tests.alone.machine_alone`) and records it in the folder the workers share
    (atomically); the others read the record."""
    base = factory.getbasetemp()
    record = (base.parent if alone.workers() else base) / f"shared-{name}.pickle"
    if not record.exists():
        with alone.machine_alone():
            if not record.exists():  # another worker may have made it while we waited
                atomic_write_bytes(record, pickle.dumps(make()))
    value: T = pickle.loads(record.read_bytes())
    return value


#: The io-heavy sweep: 1 sync worker vs uvicorn at 20 ms per request, 4 levels (the USL
#: needs 4), 2 repeats interleaved. By Little's law gunicorn-sync serves 1 / 20 ms = 50
#: req/s at every level and uvicorn users / 20 ms (50 to 800 req/s).
IO_SWEEP_ARGS = ("--scenario", "io-heavy", "--servers", "gunicorn-sync,uvicorn",
                 "--workers", "1", "--param", "latency_ms=20", "--users", "1,4,8,16",
                 "--repeats", "2", "--duration", "1.25", "--warmup", "0.5", "--keep-requests")
IO_SWEEP_LATENCY_MS = 20
IO_SWEEP_LEVELS = (1, 4, 8, 16)
#: The stream runs: gunicorn-sync (a sync worker holds one stream at a time; WebSocket
#: unsupported) vs uvicorn at two levels; the SSE run with 2 workers per server.
STREAM_LEVELS = (4, 16)
SSE_WORKERS = 2


@pytest.fixture(scope="session")
def io_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The io-heavy sweep (``IO_SWEEP_ARGS``), every trial ok (a run a busy machine made
    partly invalid is retried); its folder. ``bench run`` also wrote ``../../r.html``."""
    from tests.support import real_run

    return shared("io_sweep", tmp_path_factory,
                  lambda: real_run(tmp_path_factory.mktemp("io-sweep"), *IO_SWEEP_ARGS))


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wheel of this checkout and a fresh venv outside it with the wheel installed:
    (wheel, the venv's bin folder). Shared by the wheel and the CI-example tests."""
    from tests.support import build_wheel, install_wheel

    def make() -> tuple[Path, Path]:
        base = tmp_path_factory.mktemp("wheel")
        wheel = build_wheel(base / "dist")
        return wheel, install_wheel(wheel, base / "venv")

    return shared("installed_wheel", tmp_path_factory, make)


@pytest.fixture(scope="session")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cpu-heavy on granian-asgi, one user, its trial ok: a second scenario; its folder.
    The warm-up is detected (at most 5 s), the window is 1 s (~400 requests).

    One user, not four: the window's drift bound is 10 % of the mean latency or 1 ms,
    whichever is larger. At 4 users a request waits behind three others (6-9 ms), and a
    core whose speed wanders by a few percent within the second (seen on a shared 2-core
    VM: the same run's mean latency 5.5 to 9.5 ms from one run to the next) drifted past
    the bound in 7 of 8 runs there (not steady, rightly; in one suite all three attempts
    were). At one user the latency is the request's own cost (2.3-3.5 ms) and the 1 ms
    floor holds: 8 of 8 runs ok there."""
    from tests.support import real_run

    return shared("cpu_run", tmp_path_factory, lambda: real_run(
        tmp_path_factory.mktemp("cpu"), "--scenario", "cpu-heavy", "--servers", "granian-asgi",
        "--users", "1", "--param", "work=100", "--duration", "1", "--max-warmup", "5",
        report=False))


def _stream_run(base: Path, *args: str, duration_s: float = 2) -> Path:
    """A stream run whose trials are ok or unsupported (one a busy machine made invalid
    is retried)."""
    from tests.support import real_run

    return real_run(base, *args, "--servers", "gunicorn-sync,uvicorn",
                    "--users", ",".join(map(str, STREAM_LEVELS)), "--duration", f"{duration_s:g}",
                    timeout=180, statuses=("ok", "unsupported"))


@pytest.fixture(scope="session")
def sse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sse-stream (10 events 200 ms apart: 1.8 s a stream), gunicorn-sync vs uvicorn with
    ``SSE_WORKERS`` workers each at ``STREAM_LEVELS``, a warm-up of one stream; its
    folder."""
    return shared("sse_run", tmp_path_factory, lambda: _stream_run(
        tmp_path_factory.mktemp("sse"), "--scenario", "sse-stream",
        "--workers", str(SSE_WORKERS), "--warmup", "2"))


@pytest.fixture(scope="session")
def websocket_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """websocket-echo, gunicorn-sync (unsupported: the WSGI app answers the handshake
    404) vs uvicorn at ``STREAM_LEVELS``; its folder. hold_s 1 keeps the warm-up (1.5 s)
    at least one hold long, as the scenario wants; a 1 s window (every client holds its
    connection throughout: ~10 echoes then the hold)."""
    return shared("websocket_run", tmp_path_factory, lambda: _stream_run(
        tmp_path_factory.mktemp("ws"), "--scenario", "websocket-echo", "--workers", "1",
        "--param", "hold_s=1", "--warmup", "1.5", duration_s=1))


#: The compare runs: gunicorn-sync (1 worker, 4 users: throughput = 1 / latency by
#: Little's law), this many repeats of 1 s windows after 0.5 s, at these latencies (ms).
COMPARE_REPEATS = 6
COMPARE_LATENCY_MS = {"a": 50, "a2": 50, "slow": 70}


@pytest.fixture(scope="session")
def compare_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real runs of io-heavy on one sync worker at 4 users (``COMPARE_LATENCY_MS``),
    every trial ok, for ``bench compare`` (tests/e2e/test_compare.py) and for the closed
    loop that test_numbers sets against an open one: 'a' and 'a2' at 50 ms (same code,
    same config), 'slow' at 70: 1.4x apart, so both directions clear the gate's minimum
    effects (10 %, p99 15 %) by far (at 60 ms the p99 improvement read -13.8 % once: each
    request's own cost narrows 240 -> 200 ms); their folders by name."""
    from tests.support import real_run

    def make() -> dict[str, Path]:
        base = tmp_path_factory.mktemp("compare")
        return {name: real_run(base / name, "--scenario", "io-heavy", "--servers",
                               "gunicorn-sync", "--users", "4", "--workers", "1",
                               "--param", f"latency_ms={ms}", "--duration", "1",
                               "--warmup", "0.5", "--repeats", str(COMPARE_REPEATS),
                               report=False)
                for name, ms in COMPARE_LATENCY_MS.items()}

    return shared("compare_runs", tmp_path_factory, make)


#: The saturated run: no wait on the server and 50 users, so the load generator, not the
#: server, runs out: two locust processes (locust's own master/worker mode) on the one
#: load CPU cannot keep one granian worker busy (about 10,000 req/s at a full core on a
#: shared 2-core VM). Its scenario is a file given by path: io-heavy's, named by the
#: file, with the generator's CPU limit (``[validity] max_generator_cpu_percent``) at
#: ``SATURATED_LIMIT_PERCENT``, which the trial's reason then names. ``--fail-on-slo``:
#: its one trial is invalid, so no trial can be judged (exit 3).
SATURATED_ARGS = ("--servers", "granian-asgi", "--workers", "1", "--users", "50",
                  "--param", "latency_ms=0", "--duration", "3", "--warmup", "1",
                  "--load-processes", "2", "--keep-requests", "--fail-on-slo")
SATURATED_LIMIT_PERCENT = 50


@pytest.fixture(scope="session")
def saturated_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """``bench run --scenario saturating-io.toml SATURATED_ARGS`` once per session: (run
    folder, exit code, stdout). Read by the saturation test (tests/e2e/test_numbers.py),
    the generator-lag test (tests/unit/test_steady.py), the exit-3 gate test
    (tests/e2e/test_check.py) and the latency-scan tests (tests/unit/test_latency.py)."""
    from harness.scenarios import SCENARIOS_DIR
    from tests.support import bench, only_run

    def make() -> tuple[Path, int, str]:
        base = tmp_path_factory.mktemp("saturated")
        scenario = base / "saturating-io.toml"
        scenario.write_text("\n".join(
            f"max_generator_cpu_percent = {SATURATED_LIMIT_PERCENT}"
            if line.startswith("max_generator_cpu_percent") else line
            for line in (SCENARIOS_DIR / "io-heavy.toml").read_text().splitlines()
            if not line.startswith("name =")))
        r = bench("run", "--scenario", str(scenario), *SATURATED_ARGS,
                  "--results-dir", str(base / "results"), "--no-report")
        assert "Traceback" not in r.stderr, r.stderr
        return only_run(base / "results"), r.returncode, r.stdout

    return shared("saturated_run", tmp_path_factory, make)
