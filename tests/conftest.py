from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.servers import SERVERS

# Every process this test session starts (directly or through `bench`) inherits this
# tag (harness.procs.ENV_ALLOW passes it on), so the leftover check sees only ours.
SESSION = uuid.uuid4().hex
os.environ["BENCH_TEST_SESSION"] = SESSION


#: The session's real runs (below); a test that takes one is ``slow``.
SHARED_RUNS = frozenset({"io_sweep", "cpu_run", "sse_run", "websocket_run", "compare_runs"})
#: Module fixtures that make a real run, serve real streams or install a wheel (a second
#: or more each): a test that takes one is ``slow`` too.
MODULE_RUNS = frozenset({"agents_run", "checked_run", "docker_run", "example", "installed_wheel",
                         "killed_run", "published", "recorded", "remote_run", "runs",
                         "sse_sync", "sse_uvicorn", "stacks_run"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what needs a real sweep: a test that takes one of the session's runs
    or of the module fixtures in :data:`MODULE_RUNS` (even through another fixture), and the docker tests that need the engine (they take
    test_docker's ``client`` fixture: an image build, containers, runs inside them)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        docker = item.module is not None and item.module.__name__.endswith("test_docker")
        if fixtures & (SHARED_RUNS | MODULE_RUNS) or (docker and "client" in fixtures):
            item.add_marker(pytest.mark.slow)


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
# that needs a run of its own kind (interrupted, open loop, a saturated generator, a
# failing server) makes it itself. tests.support imports this module, so the fixtures
# import it when they run.

#: The io-heavy sweep: 1 sync worker vs uvicorn at 20 ms per request, 4 levels (the USL
#: needs 4), 2 repeats interleaved. By Little's law gunicorn-sync serves 1 / 20 ms = 50
#: req/s at every level and uvicorn users / 20 ms (50 to 800 req/s).
IO_SWEEP_ARGS = ("--scenario", "io-heavy", "--servers", "gunicorn-sync,uvicorn",
                 "--workers", "1", "--param", "latency_ms=20", "--users", "1,4,8,16",
                 "--repeats", "2", "--duration", "1.5", "--warmup", "0.5", "--keep-requests")
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

    return real_run(tmp_path_factory.mktemp("io-sweep"), *IO_SWEEP_ARGS)


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A wheel of this checkout and a fresh venv outside it with the wheel installed:
    (wheel, the venv's bin folder). Shared by the wheel and the CI-example tests."""
    from tests.support import build_wheel, install_wheel

    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base / "dist")
    return wheel, install_wheel(wheel, base / "venv")


@pytest.fixture(scope="session")
def cpu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cpu-heavy on granian-asgi, one level, its trial ok: a second scenario; its folder.
    A fresh granian's ~5 ms latency keeps falling for seconds (by 0.4-1.8 ms/s): over a
    2 s window after a fixed 1 s warm-up that drifted past the 1 ms floor in 2 of 3
    suites (not steady: the run made again). Now the warm-up is detected (at most 5 s)
    and the window is 1 s (~700 requests)."""
    from tests.support import real_run

    return real_run(tmp_path_factory.mktemp("cpu"), "--scenario", "cpu-heavy",
                    "--servers", "granian-asgi", "--users", "4", "--param", "work=100",
                    "--duration", "1", "--max-warmup", "5", report=False)


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
    return _stream_run(tmp_path_factory.mktemp("sse"), "--scenario", "sse-stream",
                       "--workers", str(SSE_WORKERS), "--warmup", "2")


@pytest.fixture(scope="session")
def websocket_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """websocket-echo, gunicorn-sync (unsupported: the WSGI app answers the handshake
    404) vs uvicorn at ``STREAM_LEVELS``; its folder. hold_s 1 keeps the warm-up (1.5 s)
    at least one hold long, as the scenario wants; a 1 s window (every client holds its
    connection throughout: ~10 echoes then the hold)."""
    return _stream_run(tmp_path_factory.mktemp("ws"), "--scenario", "websocket-echo",
                       "--workers", "1", "--param", "hold_s=1", "--warmup", "1.5",
                       duration_s=1)


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

    base = tmp_path_factory.mktemp("compare")
    return {name: real_run(base / name, "--scenario", "io-heavy", "--servers", "gunicorn-sync",
                           "--users", "4", "--workers", "1", "--param", f"latency_ms={ms}",
                           "--duration", "1", "--warmup", "0.5",
                           "--repeats", str(COMPARE_REPEATS), report=False)
            for name, ms in COMPARE_LATENCY_MS.items()}
