"""Numbers the harness vouches for: saturation, open vs closed loop, locust processes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import Window, flags, generator_saturation, request_metrics
from tests.conftest import (
    COMPARE_LATENCY_MS,
    COMPARE_REPEATS,
    IO_SWEEP_LATENCY_MS,
    IO_SWEEP_LEVELS,
    SATURATED_LIMIT_PERCENT,
)
from tests.support import run_bench


def run_trials(tmp_path: Path, *args: str) -> tuple[pd.DataFrame, Path]:
    run_dir = run_bench(tmp_path, "--scenario", "io-heavy", *args, report=False)
    return pd.read_csv(run_dir / "trials.csv"), run_dir


@pytest.mark.slow
def test_saturated_generator_is_invalid_even_across_processes(
        saturated_run: tuple[Path, int, str]) -> None:
    # No wait on the server and 50 users: the session's saturated run (tests/conftest.py).
    run_dir, _, _ = saturated_run
    (t,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    assert t["status"] == "invalid"
    assert t["reason"].startswith("generator-saturated")
    # Judged by the limit its scenario file set, not the default 90 %.
    assert t["reason"].endswith(f"(limit {SATURATED_LIMIT_PERCENT}%)"), t["reason"]
    # Two locust processes on one load CPU: the CPU, not one process, ran out.
    assert max(t["generator_cpu_percent"], t["load_cpus_busy_percent"]) >= 90
    # locust's own master/worker mode: each worker wrote its own records and meta.
    files = sorted(p.name for p in (run_dir / "requests" / t["trial_id"]).iterdir())
    assert len([f for f in files if f.endswith(".csv")]) == 2
    assert len([f for f in files if f.endswith(".meta.json")]) == 3  # master + 2 workers


@pytest.mark.alone
@pytest.mark.slow
def test_open_loop_shows_queueing_that_closed_loop_hides(
        tmp_path: Path, compare_runs: dict[str, Path]) -> None:
    # gunicorn-sync, 1 worker, 50 ms: capacity 20 req/s. 2.5 s for the open loop's queue
    # to grow (~1 s of latency per s; the bound below is 300 ms/s); the closed loop is the
    # session's compare run at the same server and latency (4 users, 6 repeats of 1 s:
    # 20 completions each, every one flat).
    open_trials, _ = run_trials(tmp_path / "open", "--servers", "gunicorn-sync", "--workers",
                                "1", "--param", "latency_ms=50", "--warmup", "1",
                                "--duration", "2.5", "--arrival-rate", "40")
    assert COMPARE_LATENCY_MS["a"] == 50
    closed_trials = pd.read_csv(compare_runs["a"] / "trials.csv")
    (o,) = open_trials.to_dict("records")
    assert o["load_mode"] == "open-loop" and o["offered_rps"] == 40
    # Arrivals at 40/s into a 20/s server: the queue, and latency, grow ~1 s per s.
    assert o["latency_trend_ms_per_s"] > 300
    assert o["throughput_rps"] == pytest.approx(20, rel=0.1)
    # Closed loop at the same server: 4 users wait their turn, latency stays flat.
    assert len(closed_trials) == COMPARE_REPEATS
    assert (closed_trials["load_mode"] == "closed-loop").all()
    assert closed_trials["offered_rps"].isna().all()
    assert (closed_trials["latency_trend_ms_per_s"].abs() < 30).all(), closed_trials
    assert closed_trials["latency_p50_ms"].between(0.9 * 4 * 50, 1.1 * 4 * 50).all()


def _records(rows: list[tuple[float, float, int, str]]) -> pd.DataFrame:
    return pd.DataFrame([(s, lat, ok, 200 if ok else 0, 10, name) for s, lat, ok, name in rows],
                        columns=["start_unix_s", "latency_ms", "ok", "status", "bytes", "name"])


def test_errors_never_count_as_throughput() -> None:
    rows = [(100.0 + i * 0.01, 5.0, int(i % 4 != 0), "request") for i in range(100)]
    m = request_metrics(_records(rows), Window(100.0, 101.0))
    assert m["requests"] == 100 and m["failures"] == 25
    assert m["throughput_rps"] == 75.0 and m["error_rate"] == 0.25


def test_only_requests_completed_inside_the_window_count() -> None:
    rows = [(99.0, 10.0, 1, "request"),      # warm-up: ends at 99.01
            (100.5, 20.0, 1, "request"),     # inside
            (100.999, 5.0, 1, "request"),    # ends at 101.004: after the window
            (100.9, 0.0, 0, "incomplete")]   # open loop, still in flight at the end
    m = request_metrics(_records(rows), Window(100.0, 101.0))
    assert m["requests"] == 1 and m["latency_p50_ms"] == 20.0 and m["incomplete"] == 1


def test_saturation_rule() -> None:
    idle = {"generator_cpu_percent": 40.0, "generator_cpu_percent_top": 40.0}
    assert generator_saturation(idle, load_cpus=1, limit_percent=90, locust_warned=False) == ""
    one_hot = {"generator_cpu_percent": 120.0, "generator_cpu_percent_top": 95.0}
    assert "busiest" in generator_saturation(one_hot, load_cpus=2, limit_percent=90,
                                             locust_warned=False)
    shared = {"generator_cpu_percent": 95.0, "generator_cpu_percent_top": 48.0}
    assert "1 load CPU" in generator_saturation(shared, load_cpus=1, limit_percent=90,
                                                locust_warned=False)
    assert "warned" in generator_saturation(idle, load_cpus=1, limit_percent=90,
                                            locust_warned=True)
    starved = {**idle, "load_cpus_busy_percent": 97.0}
    assert "another process competed" in generator_saturation(
        starved, load_cpus=1, limit_percent=90, locust_warned=False)


def test_flags_littles_law_and_ceiling() -> None:
    assert flags({"littles_law_ratio": 0.97, "efficiency": 0.95}) == ""
    assert flags({"littles_law_ratio": 0.85, "efficiency": 0.95}) == "littles-law-off"
    assert flags({"littles_law_ratio": 1.0, "efficiency": 0.5}) == "below-ceiling"
    assert flags({"littles_law_ratio": math.nan, "efficiency": math.nan}) == ""


@pytest.mark.slow
def test_repeats_interleave_configs_and_give_cis_cvs_and_capacity(io_sweep: Path) -> None:
    # The session's sweep: gunicorn-sync (1 worker) and uvicorn at 20 ms per request,
    # levels 1, 4, 8, 16 users, 2 repeats, every trial ok.
    run_dir = io_sweep
    trials = pd.read_csv(run_dir / "trials.csv")
    # Interleaved: repeat 1 of every config, then repeat 2 of every config.
    order = trials.sort_values("t_start_s")[["server", "repeat"]].drop_duplicates()
    assert [tuple(r) for r in order.itertuples(index=False)] == [
        ("gunicorn-sync", 1), ("uvicorn", 1), ("gunicorn-sync", 2), ("uvicorn", 2)]
    summary = pd.read_csv(run_dir / "summary.csv")
    two = summary[summary["n"] == 2]
    assert len(two) == 2 * len(IO_SWEEP_LEVELS)  # every level of both configs, both repeats
    assert (two["throughput_rps_ci_low"] <= two["throughput_rps_median"]).all()
    assert (two["throughput_rps_median"] <= two["throughput_rps_ci_high"]).all()
    assert two["throughput_rps_cv"].notna().all()
    capacity = pd.read_csv(run_dir / "capacity.csv").set_index("server")
    for server in ("gunicorn-sync", "uvicorn"):
        row = capacity.loc[server]
        assert row["peak_rps"] > 0 and row["sustainable_rps"] > 0
        assert 0 <= row["usl_sigma"] <= 1 and 0 <= row["usl_kappa"] <= 1
    # One sync worker cannot scale past 1 / 20 ms (50 req/s; 2x that would be two
    # requests at once, far outside the bound a loaded machine stays inside); uvicorn
    # scales almost linearly.
    ceiling = 1000 / IO_SWEEP_LATENCY_MS
    assert 0.7 * ceiling <= capacity.loc["gunicorn-sync", "peak_rps"] <= 1.05 * ceiling
    assert capacity.loc["gunicorn-sync", "usl_sigma"] > 0.5
    assert capacity.loc["uvicorn", "usl_sigma"] < 0.1
    assert capacity.loc["uvicorn", "peak_rps"] > 8 * capacity.loc["gunicorn-sync", "peak_rps"]
