"""harness.upstream: the upstream service of ``upstream-http`` runs as a real uvicorn process
group on 127.0.0.1, pinned to its CPUs, ready when started, records the command it runs,
answers ``/wait`` after the latency asked (many waits at once in its one process), and
stops (twice, or never started, is fine) leaving no process."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from harness.apps.work import UPSTREAM_BODY
from harness.procs import http_get, live_members
from harness.upstream import Upstream


def test_the_upstream_runs_pinned_overlaps_its_waits_and_stops(tmp_path: Path) -> None:
    upstream = Upstream(cpus=[0], log_path=tmp_path / "upstream.log").start()
    try:
        assert upstream.proc is not None
        pid = upstream.proc.pid
        info = upstream.info()
        assert upstream.url == f"http://127.0.0.1:{upstream.port}"
        assert (info["url"], info["pid"], info["cpus"]) == (upstream.url, pid, [0])
        assert 0 < info["startup_s"] < 30
        leader = psutil.Process(pid)
        assert leader.cmdline() == info["argv"] and leader.cpu_affinity() == [0]
        assert http_get(upstream.port, "/health") == (200, "text/plain; charset=utf-8", b"ok")
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(
                lambda _: http_get(upstream.port, "/wait?latency_ms=200"), range(8)))
        took = time.monotonic() - started
        assert answers == [(200, "application/json", UPSTREAM_BODY)] * 8
        # Each waited its 200 ms; one after another they would take 8 x 200 = 1.6 s.
        assert 0.2 <= took < 1.2
    finally:
        upstream.stop()
    assert upstream.proc is None and upstream.info()["pid"] is None
    assert live_members([pid]) == []
    upstream.stop()  # idempotent


def test_an_upstream_never_started_stops_as_a_no_op(tmp_path: Path) -> None:
    """The runner stops it in a ``finally``, also when the start failed or never came."""
    upstream = Upstream(cpus=[1], log_path=tmp_path / "upstream.log")
    upstream.stop()
    info = upstream.info()
    assert (info["pid"], info["cpus"], info["url"]) == (None, [1], "http://127.0.0.1:0")
    assert not (tmp_path / "upstream.log").exists()  # nothing was started
