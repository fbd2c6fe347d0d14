"""Real I/O runs end to end: a real PostgreSQL or upstream service started by ``bench run``,
real servers with real drivers and pools, real locust; what each trial records, and
that nothing (process or cluster folder) is left after a normal end, a failing
server, Ctrl-C, or a harness killed outright."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pytest

from harness import realio
from harness.postgres import cluster_processes
from harness.results import load_run
from harness.runner import Runner, RunPlan
from harness.scenarios import load
from harness.servers import SERVERS, ServerConfig
from tests.conftest import stop_bench
from tests.support import BENCH, run_bench

BROKEN = ServerConfig("broken", "wsgi", frozenset({"http"}),
                      ("{python}", "-c", "import sys; print('boom'); sys.exit(3)"))


def components(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text())["components"]


def gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_nothing_left(comp: dict[str, Any]) -> None:
    pg = comp.get("postgres")
    if pg:
        assert pg["dir"], "no cluster folder recorded"
        base = Path(pg["dir"])
        assert not base.exists(), f"cluster folder left: {base}"
        assert not cluster_processes(base), "postgres processes left"
        assert gone(pg["pid"])
    if comp.get("upstream"):
        assert gone(comp["upstream"]["pid"]), "upstream service left"


@pytest.mark.alone
@pytest.mark.slow
def test_db_io_records_driver_pool_and_database_connections(tmp_path: Path) -> None:
    """Pool of 2 per worker, 6 users, 20 ms in the database: uvicorn + asyncpg is capped by
    the pool at 2 / 20 ms = 100 req/s with 2 queries running at the database; gunicorn-sync
    (1 worker, psycopg) by its worker at 50 req/s with 1 running and its 2 pooled
    connections open."""
    run_dir = run_bench(tmp_path, "--scenario", "db-io", "--servers", "uvicorn,gunicorn-sync",
                        "--workers", "1", "--users", "6", "--param", "latency_ms=20",
                        "--param", "pool_size=2", "--duration", "2", "--warmup", "1")
    trials = pd.read_csv(run_dir / "trials.csv").set_index("server")
    uv, sync = trials.loc["uvicorn"], trials.loc["gunicorn-sync"]
    assert (uv["driver"], sync["driver"]) == ("asyncpg", "psycopg")
    assert uv["pool_size"] == sync["pool_size"] == 2
    assert (uv["ceiling_rps"], sync["ceiling_rps"]) == (100.0, 50.0)
    for t, ceiling in ((uv, 100.0), (sync, 50.0)):
        assert t["status"] != "failed", t["reason"]
        # The pool (or the worker) caps it: never above the ceiling, well above half of it.
        assert 0.5 * ceiling < t["throughput_rps"] <= 1.05 * ceiling, t["throughput_rps"]
        assert t["db_cpu_percent_mean"] >= 0 and t["db_pss_mib_peak"] > 0
        # Measured, not NaN; the database's can read 0: process CPU is counted in 10 ms
        # ticks, and a query that sleeps 20 ms costs well under a tick (a 2 s window at
        # 50 req/s once had none). The server's costs many ticks a window.
        assert t["db_cpu_ms_per_request"] >= 0 and t["cpu_ms_per_request"] > 0
    assert uv["db_active_peak"] == 2 and uv["db_connections_peak"] == 2
    assert sync["db_active_peak"] == 1 and sync["db_connections_peak"] == 2
    assert uv["bound_by"] == "pool" or uv["efficiency"] < 0.9
    comp = components(run_dir)
    pg = comp["postgres"]
    assert pg["version"][0].isdigit() and pg["settings"]["fsync"] == "off"
    assert pg["rows"] == 10_000 and comp["drivers"] == {"wsgi": "psycopg", "asgi": "asyncpg"}
    assert comp["cpus"] and isinstance(comp["cpus_shared_with_server"], bool)
    samples = pd.read_csv(run_dir / "samples.csv")
    assert (samples["source"] == "postgres").sum() > 5
    activity = pd.read_csv(run_dir / "db_activity.csv")
    assert activity["active"].max() == 2
    assert_nothing_left(comp)
    assert "BENCH_PG_URL" not in os.environ
    report = (tmp_path / "r.html").read_text()
    assert "Real I/O: drivers, pools and components" in report and "asyncpg" in report


@pytest.mark.alone
@pytest.mark.slow
def test_upstream_blocking_driver_is_one_call_at_a_time_and_flagged(tmp_path: Path) -> None:
    """requests inside async def (uvicorn, 1 worker) serves one call at a time: 1 / 20 ms
    = 50 req/s, flagged; the same client in gunicorn-gthread's threads is not capped so."""
    run_dir = run_bench(tmp_path, "--scenario", "upstream-http",
                        "--servers", "uvicorn,gunicorn-gthread", "--workers", "1",
                        "--users", "8", "--param", "latency_ms=20", "--param", "driver=blocking",
                        "--duration", "2", "--warmup", "1")
    trials = pd.read_csv(run_dir / "trials.csv").set_index("server")
    blocking, threads = trials.loc["uvicorn"], trials.loc["gunicorn-gthread"]
    assert (blocking["driver"], threads["driver"]) == ("blocking", "requests")
    assert blocking["status"] != "failed" and threads["status"] != "failed"
    assert blocking["ceiling_rps"] == 50.0 and threads["ceiling_rps"] == 400.0
    assert 25 < blocking["throughput_rps"] <= 52.5, blocking["throughput_rps"]
    assert threads["throughput_rps"] > 2 * blocking["throughput_rps"]
    assert "blocking-driver" in blocking["flags"]
    assert "blocking-driver" not in str(threads["flags"])
    assert math.isfinite(blocking["upstream_cpu_percent_mean"])
    assert blocking["upstream_cpu_ms_per_request"] > 0
    assert_nothing_left(components(run_dir))
    assert "Blocking anti-pattern measured" in (tmp_path / "r.html").read_text()


@pytest.mark.alone
@pytest.mark.slow
def test_upstream_through_aiohttp_is_capped_by_its_pool(tmp_path: Path) -> None:
    """aiohttp with a pool of 2 (one uvicorn worker), 6 users, 20 ms upstream: 2 / 20 ms
    = 100 req/s, no more; the upstream's CPU is measured, there is no database."""
    run_dir = run_bench(tmp_path, "--scenario", "upstream-http", "--servers", "uvicorn",
                        "--workers", "1", "--users", "6", "--param", "latency_ms=20",
                        "--param", "driver=aiohttp", "--param", "pool_size=2",
                        "--duration", "2", "--warmup", "1")
    (t,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    assert t["driver"] == "aiohttp" and t["status"] != "failed", t["reason"]
    assert t["ceiling_rps"] == 100.0 and 50 < t["throughput_rps"] <= 105, t["throughput_rps"]
    assert t["upstream_cpu_ms_per_request"] > 0 and math.isnan(t["db_active_peak"])
    assert_nothing_left(components(run_dir))


@pytest.mark.alone
@pytest.mark.slow
def test_a_failing_server_fails_its_trials_and_the_cluster_still_goes(tmp_path: Path) -> None:
    plan = RunPlan(scenario=load("db-io").with_params({"latency_ms": "10"}), servers=[BROKEN],
                   users=(2,), warmup_s=0.5, duration_s=1.0, repeats=1, workers=1,
                   server_cpus=[0], load_cpus=[1], results_dir=tmp_path)
    state = Runner(plan).execute()
    (trial,) = state.trials
    assert trial["status"] == "failed" and "exited with code 3" in trial["reason"]
    assert trial["driver"] == "psycopg"
    assert_nothing_left(state.meta.components.to_dict())
    assert "BENCH_PG_URL" not in os.environ


@pytest.mark.alone  # starts locust
def test_a_database_that_cannot_start_fails_every_trial_with_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realio.Components, "_max_connections", lambda self: -1)
    plan = RunPlan(scenario=load("db-rows"), servers=[SERVERS["uvicorn"]], users=(2, 4),
                   warmup_s=0.5, duration_s=1.0, repeats=1, workers=1, server_cpus=[0],
                   load_cpus=[1], results_dir=tmp_path)
    state = Runner(plan).execute()
    assert [t["status"] for t in state.trials] == ["failed", "failed"]
    assert all(t["reason"].startswith("postgres failed to start: ProcessError: postgres exited")
               and "max_connections" in t["reason"] for t in state.trials)
    assert not list(state.run_dir.glob("logs/server-*"))  # no server was started for it
    assert_nothing_left(state.meta.components.to_dict())


def _start_db_run(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BENCH, "run", "--scenario", "db-io", "--servers", "uvicorn", "--users", "4",
         "--param", "latency_ms=20", "--duration", "30", "--warmup", "1",
         "--results-dir", str(tmp_path / "results"), "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_under_load(tmp_path: Path, proc: subprocess.Popen[str]) -> Path:
    """The run folder, once its cluster is up and locust is loading the server (then
    0.5 s more of load)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        for meta_path in (tmp_path / "results").glob("*/run.json"):
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError:
                continue
            # locust writes its records from the level's start on
            under_load = any(meta_path.parent.glob("requests/*/*.csv"))
            if under_load and (meta.get("components") or {}).get("postgres"):
                time.sleep(0.5)
                return meta_path.parent
        time.sleep(0.2)
    raise AssertionError(f"the run never got under load (exit {proc.poll()})")


@pytest.mark.alone
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
@pytest.mark.slow
def test_interrupted_or_killed_run_leaves_no_postgres(tmp_path: Path,
                                                      sig: signal.Signals) -> None:
    """Ctrl-C: the run's own teardown stops the cluster and removes its folder (exit 130).
    kill -9: the kernel tells the postmaster (fast shutdown) and the run's watchdog
    removes the folder."""
    proc = _start_db_run(tmp_path)
    try:
        run_dir = _wait_under_load(tmp_path, proc)
        comp = components(run_dir)
        assert Path(comp["postgres"]["dir"]).is_dir()
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        if sig == signal.SIGINT:
            assert proc.returncode == 130
            assert load_run(run_dir).meta.status == "interrupted"
        else:
            base = Path(comp["postgres"]["dir"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (base.exists() or cluster_processes(base)):
                time.sleep(0.2)
        assert_nothing_left(comp)
    finally:
        stop_bench(proc)
