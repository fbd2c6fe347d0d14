"""Short real runs through the `bench` CLI: real servers, real locust, results on disk.

The io-heavy tests read the session's shared sweep (``conftest.io_sweep``: gunicorn-sync
with 1 worker vs uvicorn, 20 ms per request, levels 1, 4, 8 and 16 users, 2 repeats), the
cpu-heavy test the session's ``cpu_run``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.results import (
    REQUEST_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    load_run,
)
from tests.conftest import IO_SWEEP_LATENCY_MS, IO_SWEEP_LEVELS, project_processes
from tests.support import bench, report_of

pytestmark = pytest.mark.slow  # every test here reads a real run
LATENCY_MS = IO_SWEEP_LATENCY_MS


def sync_and_asgi(trials: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (trials[trials["server"] == "gunicorn-sync"].set_index(["users", "repeat"]),
            trials[trials["server"] == "uvicorn"].set_index(["users", "repeat"]))


def test_io_heavy_follows_littles_law(io_sweep: Path) -> None:
    trials = pd.read_csv(io_sweep / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    assert (trials["status"] == "ok").all(), trials[["status", "reason"]]
    sync, asgi = sync_and_asgi(trials)
    users = asgi.index.get_level_values("users")
    # Little's law: 1 sync worker x (1 / 20 ms) = 50 req/s at every level; uvicorn serves
    # every user at once: users / 20 ms (50 .. 800 req/s). The bounds separate these by
    # a wide margin whatever else runs on the machine: a sync worker serving two requests
    # at once (100 req/s), a window that counted its warm-up (1.4x) or a rate per window
    # instead of per second (1.25x) fail them, and uvicorn serialised like a sync worker
    # (50 req/s at 16 users, 16x below) fails its lower bound. Nothing can beat the
    # ceiling: a request takes at least 20 ms.
    assert sync["throughput_rps"].between(0.7 * 50, 1.05 * 50).all(), sync["throughput_rps"]
    ceiling = users / (LATENCY_MS / 1000)
    assert (asgi["throughput_rps"] <= 1.05 * ceiling).all(), asgi["throughput_rps"]
    assert (asgi["throughput_rps"] >= 0.6 * ceiling).all(), asgi["throughput_rps"]
    # Latency: uvicorn's is the wait itself, a sync worker's the queue of users ahead.
    assert asgi["latency_p50_ms"].between(LATENCY_MS, 1.5 * LATENCY_MS).all()
    queued = sync.loc[sync.index.get_level_values("users") >= 4]
    queue_ms = queued.index.get_level_values("users") * LATENCY_MS
    assert (queued["latency_p50_ms"] / queue_ms).between(0.9, 1.3).all(), queued["latency_p50_ms"]
    for ratio in trials["littles_law_ratio"]:
        assert 0.95 <= ratio <= 1.05
    # No Little's-law warning anywhere. "below-ceiling" marks exactly the trials under
    # 90% of the Little's-law ceiling (efficiency = throughput / ceiling). How many there
    # are is a fact about the machine, not the harness: the ceiling leaves out the cost
    # of a request beside its 20 ms wait (a connection, parsing, the response: 1 to 3 ms
    # on a shared 2-core VM, where 0.83 to 0.93 of the ceiling was measured at every
    # level), so the bounds above, not the flag's count, separate right from wrong.
    ceilings = [50.0 if server == "gunicorn-sync" else users / (LATENCY_MS / 1000)
                for server, users in zip(trials["server"], trials["users"], strict=True)]
    assert trials["ceiling_rps"].tolist() == ceilings
    assert np.allclose(trials["efficiency"], trials["throughput_rps"] / trials["ceiling_rps"])
    flags = trials["flags"].astype("string").fillna("")  # all empty: read as float NaN
    assert not flags.str.contains("littles-law-off").any(), flags
    assert flags.isin(["", "below-ceiling"]).all(), flags
    below = flags == "below-ceiling"
    assert (below == (trials["efficiency"] < 0.9)).all(), trials[["efficiency", "flags"]]
    # Unrounded: locust would store 20 or 21; our records keep sub-ms digits.
    assert (asgi["latency_p50_ms"] % 1 != 0).all()
    assert (trials["failures"] == 0).all()
    assert (trials["pss_mib_peak"] > 5).all() and (trials["pss_mib_peak"] <= trials["rss_mib_peak"]).all()
    assert (trials["generator_cpu_percent"] > 0).all()


def test_one_locust_session_serves_the_run_and_levels_step_up(io_sweep: Path) -> None:
    """One locust process served all 16 levels of both servers and both repeats (each
    level's meta names the process that ran it); closed-loop HTTP levels step up."""
    assert json.loads((io_sweep / "run.json").read_text())["level_transition"] == "step-up"
    metas = list((io_sweep / "requests").glob("*/*.meta.json"))
    assert len(metas) == 2 * 2 * len(IO_SWEEP_LEVELS)
    assert len({json.loads(m.read_text())["pid"] for m in metas}) == 1
    assert len(list((io_sweep / "logs").glob("locust-*.log"))) == 1
    assert "each later level adds users to the previous level" in report_of(io_sweep).read_text()


def test_results_read_back_into_pandas(io_sweep: Path) -> None:
    run_dir = io_sweep
    run = load_run(run_dir)
    assert run.meta.status == "complete" and run.meta.schema_version == SCHEMA_VERSION
    assert run.meta.migrated_from is None  # written by this version, read as is
    assert run.meta.cpus.to_dict() == {"server": [0], "load": [1], "harness": [1],
                                       "shared": False}
    assert run.meta.versions["locust"] and run.meta.versions["gunicorn"]
    assert run.meta.scenario.params == {"latency_ms": LATENCY_MS}
    assert len(run.meta.trials) == len(run.trials) == 2 * len(IO_SWEEP_LEVELS) * 2
    assert tuple(run.samples.columns) == SAMPLE_COLUMNS
    assert set(run.samples["source"]) == {"server", "generator"}
    assert run.samples.query("source == 'server'")["pss_mib"].notna().sum() >= 5
    for trial_id, in_window in zip(run.trials["trial_id"], run.trials["requests"], strict=True):
        req = run.requests(trial_id)
        # every request of the trial, warm-up included: at least those of the window
        # (kept: the sweep runs with --keep-requests); and the window's histograms
        assert tuple(req.columns) == REQUEST_COLUMNS and len(req) >= in_window > 30
        assert (run_dir / "latency" / f"{trial_id}.json").is_file()
    for name in ("server-gunicorn-sync-r1.log", "server-uvicorn-r1.log",
                 "server-gunicorn-sync-r2.log", "server-uvicorn-r2.log"):
        assert (run_dir / "logs" / name).is_file()
    json.loads((run_dir / "run.json").read_text())


def test_report_written_and_rerendered(io_sweep: Path, tmp_path: Path) -> None:
    run_dir = io_sweep
    html = report_of(run_dir).read_text()
    assert "gunicorn-sync" in html and "uvicorn" in html
    r = bench("report", str(run_dir), "-o", str(tmp_path / "again.html"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again.html").stat().st_size > 100_000


def test_no_process_left_after_run(io_sweep: Path) -> None:
    run_dir = io_sweep
    assert project_processes(run_id=run_dir.name) == []


def test_cpu_heavy_runs_and_verifies_checksums(cpu_run: Path) -> None:
    trials = pd.read_csv(cpu_run / "trials.csv")
    (row,) = trials.to_dict("records")
    assert row["status"] == "ok" and row["failures"] == 0 and row["throughput_rps"] > 20
    # CPU-bound: the server's core is busy.
    assert row["cpu_percent_mean"] > 50


@pytest.mark.alone
def test_the_run_let_its_cpu_locks_go_when_it_returned(io_sweep: Path) -> None:
    """The sweep ran in this process (tests.support.bench): ``bench run`` released its
    CPU locks on return, not at process exit, so this process (a different open file of
    each lock, which flock treats as another holder) takes them at once."""
    from harness import cpulock

    meta = json.loads((io_sweep / "run.json").read_text())
    assert meta["harness"]["pid"] == os.getpid() and meta["cpu_locks"]["cpus"] == [0, 1]
    with cpulock.acquire([0, 1], wait_s=0) as locks:
        assert locks.cpus == [0, 1]
