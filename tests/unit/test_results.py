"""The results store: atomic writes, schema versions, migration of older runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import UserError
from harness.results import (
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    TRIAL_COLUMNS,
    atomic_write_json,
    load_run,
)
from tests.support import bench

# What schema 1 (this project's first results format) wrote.
V1_TRIALS = ("trial_id", "scenario", "server", "interface", "backend", "workers", "threads",
             "users", "repeat", "status", "reason", "load_mode", "t_start_s", "t_end_s",
             "window_s", "requests", "failures", "throughput_rps", "error_rate",
             "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p95_ms",
             "latency_p99_ms", "latency_p999_ms", "latency_max_ms", "cpu_percent_mean",
             "cpu_percent_peak", "pss_mib_mean", "pss_mib_peak", "rss_mib_peak",
             "uss_mib_peak", "server_processes", "generator_cpu_percent",
             "generator_cpu_percent_peak", "littles_law_ratio", "ceiling_rps", "efficiency")
V1_SAMPLES = ("t_s", "source", "server", "repeat", "users", "processes", "cpu_percent",
              "rss_mib", "pss_mib", "uss_mib", "threads", "fds")


def write_v1_run(run_dir: Path) -> None:
    (run_dir / "requests").mkdir(parents=True)
    row = dict.fromkeys(V1_TRIALS, 1.0)
    row.update(trial_id="uvicorn-u10-r1", scenario="io-heavy", server="uvicorn",
               interface="asgi", backend="local", status="ok", reason="", load_mode="")
    pd.DataFrame([row], columns=list(V1_TRIALS)).to_csv(run_dir / "trials.csv", index=False)
    pd.DataFrame([dict.fromkeys(V1_SAMPLES, 1.0)]).to_csv(run_dir / "samples.csv", index=False)
    (run_dir / "requests" / "uvicorn-u10-r1.csv").write_text(
        "100.000000,50.1234,1,200,30\n100.010000,50.4321,1,200,30\n")
    atomic_write_json(run_dir / "run.json", {
        "schema_version": 1, "run_id": run_dir.name, "status": "complete",
        "scenario": {"name": "io-heavy", "request_path": "/io?latency_ms=50",
                     "slo": {"p99_ms": 150, "max_error_rate": 0.01}},
        "trials": [row]})


def test_older_schema_is_migrated_on_read(tmp_path: Path) -> None:
    write_v1_run(tmp_path / "old")
    run = load_run(tmp_path / "old")
    assert run.meta.schema_version == SCHEMA_VERSION and run.meta.migrated_from == 1
    assert tuple(run.trials.columns) == TRIAL_COLUMNS
    assert tuple(run.samples.columns) == SAMPLE_COLUMNS
    t = run.trials.iloc[0]
    assert t["load_mode"] == "closed-loop" and t["flags"] == "" and pd.isna(t["offered_rps"])
    req = run.requests("uvicorn-u10-r1")
    assert list(req["name"]) == ["request", "request"]
    assert list(req["latency_ms"]) == [50.1234, 50.4321]
    # The stored files are not rewritten by reading them.
    assert json.loads((tmp_path / "old" / "run.json").read_text())["schema_version"] == 1


def test_a_migrated_run_renders_a_report(tmp_path: Path) -> None:
    write_v1_run(tmp_path / "old")
    r = bench("report", str(tmp_path / "old"), "-o", str(tmp_path / "old.html"))
    assert r.returncode == 0, r.stderr
    assert "uvicorn" in (tmp_path / "old.html").read_text()


def test_newer_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    atomic_write_json(tmp_path / "new" / "run.json", {"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(UserError, match="newer than this bench understands.*upgrade bench"):
        load_run(tmp_path / "new")


def test_atomic_write_leaves_old_file_or_new_never_a_mix(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    atomic_write_json(target, {"a": 1})

    class Boom:  # json.dumps(default=str) calls str(): fail in the middle of serialising
        def __str__(self) -> str:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_json(target, {"a": 2, "b": Boom()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temp file left
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # readable by others, not mkstemp's
