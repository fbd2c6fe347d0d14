"""The oracle (harness.oracle): wrk on real servers on loopback, and through `bench`."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness import cross_check, oracle
from harness.backends.local import LocalServer
from harness.machine import default_cpu_sets
from harness.results import TRIAL_COLUMNS
from harness.servers import SERVERS
from tests import support
from tests.support import bench

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None,
                               reason="wrk not installed (apt-get install wrk)")
SERVER_CPUS, LOAD_CPUS = default_cpu_sets()
ORACLE_FIGURES = ("oracle_throughput_rps", "oracle_latency_p50_ms", "oracle_latency_p99_ms",
                  "oracle_agreement")


@contextlib.contextmanager
def deployed(name: str, log_dir: Path) -> Iterator[LocalServer]:
    """A real server config, 1 worker, on the server CPUs, as the runner deploys it."""
    server = LocalServer(SERVERS[name], workers=1, cpus=SERVER_CPUS,
                         log_path=log_dir / f"{name}.log", clock=time.monotonic)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def uvicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with deployed("uvicorn", tmp_path_factory.mktemp("uvicorn")) as server:
        yield server


# ------------------------------------------------------------------- wrk on a real server

@pytest.mark.alone
@needs_wrk
@pytest.mark.slow
def test_io_heavy_follows_littles_law(uvicorn: LocalServer, tmp_path: Path) -> None:
    # An event loop serves 4 connections at once: 4 / 50 ms = 80 req/s, p50 ~ 50 ms.
    # A rate in the wrong unit (x1000), the warm-up counted in (x1.5) or errors counted
    # as throughput would all fall outside these bands.
    r = oracle.drive(uvicorn, "/io?latency_ms=50", users=4, cpus=LOAD_CPUS, warmup_s=1,
                     duration_s=2, out_dir=tmp_path, label="io")
    assert 60 <= r.throughput_rps <= 90, r
    assert 48 <= r.latency_p50_ms <= 65, r
    assert r.latency_p50_ms <= r.latency_p99_ms <= r.latency_max_ms
    assert 1.9 <= r.duration_s <= 2.5  # wrk's own clock, not the asked-for 2 s
    assert r.errors.total == 0 and r.successes == r.requests
    # Little's law: throughput x mean latency = connections in flight.
    assert r.throughput_rps * r.latency_mean_ms / 1000 / 4 == pytest.approx(1.0, abs=0.1)
    assert r.connections == 4 and r.threads == 1 and r.warmup_s == 1
    assert r.argv[-1].startswith("http://127.0.0.1:") and "-c" in r.argv
    assert r.version.startswith("wrk ")
    # wrk's own CPU (its reaped child's rusage), the load CPUs' and the server's, during
    # the measured run: wrk at 80 req/s needs a few % of a core, never 0 or > 100.
    assert 0 < r.generator_cpu_percent < 50, r
    # Measured (NaN would fail), but it may read 0.0: the kernel's per-CPU accounting is
    # tick-based, and 4 connections keep wrk's CPU at a few percent for 2 s.
    assert 0 <= r.load_cpus_busy_percent <= 100, r
    assert 0 <= r.server_cpu_percent and 0 < r.server_cpus_busy_percent <= 100
    # The warm-up ran (its figures kept apart) and the measured run's JSON is on disk.
    warm = json.loads((tmp_path / "io-warmup.json").read_text())
    measured = json.loads((tmp_path / "io.json").read_text())
    assert warm["requests"] > 0 and measured["requests"] == r.requests


@pytest.mark.alone
@needs_wrk
@pytest.mark.slow
def test_a_queue_behind_one_sync_worker(tmp_path: Path) -> None:
    # gunicorn-sync, 1 worker: one request at a time, so 4 connections get 1 / 50 ms =
    # 20 req/s and wait in line: p50 ~ 4 x 50 = 200 ms (Little's law again).
    with deployed("gunicorn-sync", tmp_path) as server:
        r = oracle.drive(server, "/io?latency_ms=50", users=4, cpus=LOAD_CPUS, warmup_s=1,
                         duration_s=2, out_dir=tmp_path, label="sync")
    assert 15 <= r.throughput_rps <= 21, r
    assert 150 <= r.latency_p50_ms <= 260, r


@pytest.mark.alone
@needs_wrk
@pytest.mark.slow
def test_error_responses_are_not_throughput(uvicorn: LocalServer, tmp_path: Path) -> None:
    oracle.drain(uvicorn.port, uvicorn.wait_idle)
    r = oracle.run_wrk(uvicorn.port, "/no-such-path", users=2, cpus=LOAD_CPUS, duration_s=1,
                       out_dir=tmp_path, label="errors")
    assert r.requests > 100  # the server answered, fast
    assert r.errors.status == r.requests  # every answer a 404
    assert r.successes == 0 and r.throughput_rps == 0.0


# --------------------------------------------------------------------------- pure parts

def test_parse_wrk_json() -> None:
    data = {"requests": 1000, "duration_us": 2_000_000, "bytes": 175_000,
            "errors": {"connect": 3, "read": 5, "write": 0, "status": 100, "timeout": 10},
            "latency_us": {"mean": 50_123.4, "max": 90_000, "p50": 50_001, "p90": 51_000,
                           "p99": 60_500, "p99.9": 80_000}}
    argv = ["wrk", "-t", "1", "-c", "64", "-d", "2s", "http://127.0.0.1:1/io"]
    r = oracle.parse_summary(data, version="wrk 4.1.0", argv=argv)
    # Status errors and late responses are in `requests`; socket errors are not.
    assert r.successes == 1000 - 100 - 10
    assert r.throughput_rps == pytest.approx(890 / 2.0)
    assert (r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms) == (50.001, 60.5, 90.0)
    assert r.latency_mean_ms == pytest.approx(50.1234)
    assert r.errors.socket == 8 and r.errors.total == 118
    assert (r.connections, r.threads, r.duration_s) == (64, 1, 2.0)
    # Nothing timed (every response too late): latency unknown, not 0.
    late = {**data, "requests": 10, "errors": {**data["errors"], "status": 0, "timeout": 10}}
    assert math.isnan(oracle.parse_summary(late, version="", argv=argv).latency_p50_ms)
    with pytest.raises(oracle.OracleError, match="lacks"):
        oracle.parse_summary({"requests": 1}, version="", argv=argv)
    with pytest.raises(oracle.OracleError, match="duration"):
        oracle.parse_summary({**data, "duration_us": 0}, version="", argv=argv)


def test_wrk_argv_uses_the_trial_concurrency_and_loopback() -> None:
    argv = oracle.wrk_argv("wrk", port=8000, path="/io?latency_ms=5", users=512, load_cpus=2,
                           duration_s=9.6, script=Path("done.lua"))
    assert argv[argv.index("-c") + 1] == "512" and argv[argv.index("-t") + 1] == "2"
    assert argv[argv.index("-d") + 1] == "10s" and argv[argv.index("--timeout") + 1] == "30s"
    assert argv[-1] == "http://127.0.0.1:8000/io?latency_ms=5"
    # Never more threads than connections; at least one second.
    few = oracle.wrk_argv("wrk", port=1, path="/", users=1, load_cpus=4, duration_s=0.2,
                          script=Path("x"))
    assert few[few.index("-t") + 1] == "1" and few[few.index("-d") + 1] == "1s"


def test_agreement_and_flag() -> None:
    assert cross_check.agreement(96.0, 100.0) == pytest.approx(0.96)
    assert not cross_check.disagrees(0.96) and cross_check.disagrees(0.94) and cross_check.disagrees(1.06)
    assert cross_check.agreement(10.0, 0.0) == math.inf and cross_check.disagrees(math.inf)
    assert math.isnan(cross_check.agreement(0.0, 0.0)) and not cross_check.disagrees(math.nan)
    result = oracle.parse_summary(
        {"requests": 800, "duration_us": 10_000_000, "bytes": 1,
         "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
         "latency_us": {"mean": 1, "max": 1, "p50": 1, "p90": 1, "p99": 2, "p99.9": 2}},
        version="wrk", argv=["wrk"])
    trial = {"throughput_rps": 64.0, "flags": "below-ceiling"}
    cross_check.fill_trial(trial, result)
    assert trial["oracle_throughput_rps"] == 80.0 and trial["oracle_agreement"] == 0.8
    assert trial["flags"] == f"below-ceiling;{cross_check.DISAGREES_FLAG}"
    close = {"throughput_rps": 79.0, "flags": ""}
    cross_check.fill_trial(close, result)
    assert close["flags"] == ""


def test_what_is_not_cross_checked() -> None:
    ok = {"status": "ok", "load_mode": "closed-loop"}
    assert cross_check.not_checked_reason(ok, "http") == ""
    assert cross_check.not_checked_reason({**ok, "status": "invalid"}, "http") == ""
    assert "stream scenario" in cross_check.not_checked_reason(ok, "sse")
    assert "stream scenario" in cross_check.not_checked_reason(ok, "websocket")
    assert "open-loop" in cross_check.not_checked_reason({**ok, "load_mode": "open-loop"}, "http")
    assert "failed" in cross_check.not_checked_reason({**ok, "status": "failed"}, "http")


def test_agreement_table() -> None:
    def row(tid: str, server: str, users: int, rps: float, wrk: float) -> dict[str, object]:
        r: dict[str, object] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
        r.update(trial_id=tid, server=server, users=users, repeat=1, throughput_rps=rps,
                 latency_p50_ms=50.0, latency_p99_ms=60.0, oracle_throughput_rps=wrk,
                 oracle_latency_p50_ms=49.0, oracle_latency_p99_ms=55.0)
        return r
    trials = pd.DataFrame([row("u-64", "uvicorn", 64, 790.0, 1000.0),
                           row("g-16", "gunicorn-sync", 16, 99.0, 100.0),
                           row("g-4", "gunicorn-sync", 4, 20.0, math.nan),
                           row("x-8", "uvicorn", 8, 1.0, math.nan)])
    table = cross_check.agreement_table(trials, {"g-4": "not cross-checked: open-loop trial"})
    assert tuple(table.columns) == cross_check.AGREEMENT_COLUMNS
    # x-8 was never cross-checked (no figures, no reason): not in the table.
    assert list(zip(table["server"], table["users"], table["status"], strict=True)) == [
        ("gunicorn-sync", 4, "not-checked"), ("gunicorn-sync", 16, "agrees"),
        ("uvicorn", 64, "disagrees")]
    assert table.loc[2, "agreement"] == pytest.approx(0.79)
    assert table.loc[0, "reason"] == "not cross-checked: open-loop trial"
    assert table.loc[1, "wrk_latency_p99_ms"] == 55.0
    # A run without --cross-check (or from before the oracle columns): an empty table.
    old = pd.DataFrame([{"trial_id": "a", "server": "s", "users": 1, "throughput_rps": 1.0,
                         "latency_p50_ms": 1.0, "latency_p99_ms": 1.0}])
    assert cross_check.agreement_table(old).empty


# ------------------------------------------------------------------------- through bench

@pytest.fixture(scope="module")
def checked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("wrk") is None:
        pytest.skip("wrk not installed (apt-get install wrk)")
    base = tmp_path_factory.mktemp("run")
    r = bench("run", "--scenario", "io-heavy", "--servers", "uvicorn", "--users", "4",
              "--param", "latency_ms=50", "--workers", "1", "--duration", "1", "--warmup", "1",
              "--cross-check", "--results-dir", str(base / "results"),
              "--no-report")
    assert r.returncode == 0, r.stdout + r.stderr
    (run_dir,) = [p for p in (base / "results").iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_cross_check_fills_the_trial_columns(checked_run: Path) -> None:
    trials = pd.read_csv(checked_run / "trials.csv")
    start = list(trials.columns).index(ORACLE_FIGURES[0])  # the oracle's columns, together
    assert tuple(trials.columns[start:start + 4]) == ORACLE_FIGURES
    (t,) = trials.to_dict("records")
    assert t["status"] in ("ok", "invalid")
    # 4 connections on an event loop, 50 ms each: ~80 req/s from both generators.
    assert 60 <= t["oracle_throughput_rps"] <= 90
    assert 48 <= t["oracle_latency_p50_ms"] <= 65
    assert t["oracle_agreement"] == pytest.approx(t["throughput_rps"] / t["oracle_throughput_rps"])
    # Whether they agree is a fact about the machine (a busy load CPU slows locust, not
    # wrk); the flag must say so exactly when the ratio is beyond the tolerance.
    flagged = cross_check.DISAGREES_FLAG in str(t["flags"])
    assert flagged == (abs(t["oracle_agreement"] - 1) > cross_check.AGREEMENT_TOLERANCE)
    meta = json.loads((checked_run / "run.json").read_text())
    entry = meta["oracle"]["trials"][t["trial_id"]]
    assert meta["oracle"]["tolerance"] == cross_check.AGREEMENT_TOLERANCE
    assert entry["argv"][entry["argv"].index("-c") + 1] == "4"
    assert entry["argv"][-1].startswith("http://127.0.0.1:")
    assert (checked_run / "oracle" / f"{t['trial_id']}.json").is_file()
    assert (checked_run / "oracle" / f"{t['trial_id']}-warmup.json").is_file()


@pytest.mark.slow
def test_cross_check_of_a_stored_run_writes_oracle_csv(checked_run: Path) -> None:
    r = bench("cross-check", str(checked_run))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agrees" in r.stdout or "disagrees" in r.stdout
    table = pd.read_csv(checked_run / "oracle.csv")
    assert tuple(table.columns) == cross_check.ORACLE_COLUMNS
    (row,) = table.to_dict("records")
    assert row["server"] == "uvicorn" and row["users"] == 4
    assert 60 <= row["oracle_throughput_rps"] <= 90
    assert row["oracle_status"] in ("agrees", "disagrees")
    assert row["oracle_errors"] == 0 and row["oracle_warmup_s"] == 1
    # The same pure table the report uses reads it too.
    assert cross_check.agreement_table(table)["status"].tolist() == [row["oracle_status"]]


@pytest.mark.slow
def test_cross_check_of_an_unknown_server_is_one_line(checked_run: Path) -> None:
    r = bench("cross-check", str(checked_run), "--servers", "hypercorn")
    assert r.returncode == 2
    assert r.stderr.strip() == ("bench: error: --servers hypercorn: not in this run "
                                "(it has: uvicorn)")


@pytest.mark.parametrize("args", [
    ("run", "--scenario", "io-heavy", "--cross-check"),
    ("cross-check", "."),
])
@pytest.mark.slow
def test_missing_wrk_is_one_line_and_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    path = str(Path(sys.executable).parent)  # the venv's bin: python, bench, no wrk
    assert shutil.which("wrk", path=path) is None
    r = subprocess.run([*support.BENCH, *args, *(["--results-dir", str(tmp_path)]
                                          if args[0] == "run" else [])],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
                       env={**os.environ, "PATH": path})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("bench: error: wrk not found") and "apt-get install wrk" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
