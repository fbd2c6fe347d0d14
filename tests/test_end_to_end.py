"""Short real runs through the `bench` CLI: real servers, real locust, results on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.results import (
    REQUEST_COLUMNS,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    load_run,
)
from tests.conftest import project_processes

BENCH = [sys.executable, "-m", "harness.cli"]


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200"}, check=False)


def only_run(results: Path) -> Path:
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def io_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    base = tmp_path_factory.mktemp("io")
    started = time.time()
    r = bench("run", "--scenario", "io-heavy", "--servers", "gunicorn-sync,uvicorn",
              "--param", "latency_ms=50", "--users", "20", "--workers", "2",
              "--duration", "5", "--warmup", "1",
              "--results-dir", str(base / "results"), "--report", str(base / "report.html"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    return only_run(base / "results"), base / "report.html", started


def test_io_heavy_follows_littles_law(io_run: tuple[Path, Path, float]) -> None:
    run_dir, _, _ = io_run
    trials = pd.read_csv(run_dir / "trials.csv")
    assert tuple(trials.columns) == TRIAL_COLUMNS
    trials = trials.set_index("server")
    assert (trials["status"] == "ok").all(), trials[["status", "reason"]]
    # Little's law: 2 sync workers x (1 / 50 ms) = 40 req/s; 20 users / 50 ms = 400 req/s.
    assert trials.loc["gunicorn-sync", "throughput_rps"] == pytest.approx(40, rel=0.05)
    assert trials.loc["uvicorn", "throughput_rps"] == pytest.approx(400, rel=0.05)
    assert trials.loc["uvicorn", "latency_p50_ms"] == pytest.approx(50, abs=5)
    assert trials.loc["gunicorn-sync", "latency_p50_ms"] == pytest.approx(500, rel=0.1)
    for ratio in trials["littles_law_ratio"]:
        assert 0.95 <= ratio <= 1.05
    assert trials["flags"].isna().all()  # no Little's-law or ceiling warning
    # Unrounded: locust would store 50 or 51; our records keep sub-ms digits.
    assert trials.loc["uvicorn", "latency_p50_ms"] % 1 != 0
    assert (trials["failures"] == 0).all()
    assert (trials["pss_mib_peak"] > 5).all() and (trials["pss_mib_peak"] <= trials["rss_mib_peak"]).all()
    assert (trials["generator_cpu_percent"] > 0).all()


def test_results_read_back_into_pandas(io_run: tuple[Path, Path, float]) -> None:
    run_dir, _, _ = io_run
    run = load_run(run_dir)
    assert run.meta["status"] == "complete" and run.meta["schema_version"] == SCHEMA_VERSION
    assert "migrated_from" not in run.meta  # written by this version, read as is
    assert run.meta["cpus"] == {"server": [0], "load": [1], "harness": [1], "shared": False}
    assert run.meta["versions"]["locust"] and run.meta["versions"]["gunicorn"]
    assert run.meta["scenario"]["params"] == {"latency_ms": 50}
    assert len(run.meta["trials"]) == len(run.trials) == 2
    assert tuple(run.samples.columns) == SAMPLE_COLUMNS
    assert set(run.samples["source"]) == {"server", "generator"}
    assert run.samples.query("source == 'server'")["pss_mib"].notna().sum() >= 5
    for trial_id in run.trials["trial_id"]:
        req = run.requests(trial_id)
        assert tuple(req.columns) == REQUEST_COLUMNS and len(req) > 100
    for name in ("server-gunicorn-sync-r1.log", "server-uvicorn-r1.log"):
        assert (run_dir / "logs" / name).is_file()
    json.loads((run_dir / "run.json").read_text())


def test_report_written_and_rerendered(io_run: tuple[Path, Path, float], tmp_path: Path) -> None:
    run_dir, report, _ = io_run
    html = report.read_text()
    assert "gunicorn-sync" in html and "uvicorn" in html
    r = bench("report", str(run_dir), "-o", str(tmp_path / "again.html"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "again.html").stat().st_size > 100_000


def test_no_process_left_after_run(io_run: tuple[Path, Path, float]) -> None:
    run_dir, _, _ = io_run
    assert project_processes(run_id=run_dir.name) == []


def test_cpu_heavy_runs_and_verifies_checksums(tmp_path: Path) -> None:
    r = bench("run", "--scenario", "cpu-heavy", "--servers", "granian-asgi", "--users", "4",
              "--param", "work=100", "--duration", "3", "--warmup", "1",
              "--results-dir", str(tmp_path / "results"), "--report", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stdout + r.stderr
    trials = pd.read_csv(only_run(tmp_path / "results") / "trials.csv")
    (row,) = trials.to_dict("records")
    assert row["status"] == "ok" and row["failures"] == 0 and row["throughput_rps"] > 20
    # CPU-bound: the server's core is busy.
    assert row["cpu_percent_mean"] > 50
