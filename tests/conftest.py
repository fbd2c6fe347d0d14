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

from harness.procs import free_port, running, wait_ready
from harness.servers import SERVERS

# Every process this test session starts (directly or through `bench`) inherits this
# tag (harness.procs.ENV_ALLOW passes it on), so the leftover check sees only ours.
SESSION = uuid.uuid4().hex
os.environ["BENCH_TEST_SESSION"] = SESSION


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
    """Start server config ``name`` on a free loopback port; yield (port, master process)."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    with running(SERVERS[name].argv(port=port, workers=workers), cpus=[0], log_path=log) as proc:
        wait_ready(proc, port, log)
        yield port, psutil.Process(proc.pid)
