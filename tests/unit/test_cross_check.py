"""harness.cross_check without driving wrk: the flag on a trial that had none, the table
built from oracle.csv's own reasons, a trial left out recorded in the run's metadata
with the oracle's settings, and ``bench cross-check`` of a stored stream run, which starts no
server, writes every row not-checked and keeps the rows of servers not named."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import cross_check
from harness.errors import UserError
from harness.oracle import OracleResult, parse_summary
from harness.plan import RunPlan
from harness.runmeta import RunMeta
from harness.scenarios import load
from harness.servers import SERVERS
from harness.trial import TRIAL_COLUMNS
from tests.synth import STORED

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None,
                               reason="wrk not installed (apt-get install wrk)")


def wrk_result(rps: float) -> OracleResult:
    """wrk's summary of a 10 s run at ``rps``, p50 10 ms, p99 20 ms."""
    return parse_summary(
        {"requests": int(rps * 10), "duration_us": 10_000_000, "bytes": 1,
         "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
         "latency_us": {"mean": 1, "max": 1, "p50": 10_000, "p90": 1, "p99": 20_000,
                        "p99.9": 1}}, version="wrk", argv=["wrk"])


def test_the_tolerance_is_inclusive_as_documented() -> None:
    """Off by exactly 5 % agrees, a hair more disagrees; NaN never disagrees, inf does."""
    assert not cross_check.disagrees(cross_check.agreement(105.0, 100.0))
    assert not cross_check.disagrees(cross_check.agreement(95.0, 100.0))
    assert cross_check.disagrees(cross_check.agreement(105.01, 100.0))
    assert cross_check.disagrees(cross_check.agreement(94.99, 100.0))
    assert not cross_check.disagrees(cross_check.agreement(math.nan, 100.0))
    assert cross_check.disagrees(cross_check.agreement(1.0, 0.0))


def test_a_trial_without_flags_gets_only_the_oracle_flag_once() -> None:
    """A row as the runner builds it has NaN for every column not set yet, flags too."""
    trial: dict[str, object] = dict.fromkeys(TRIAL_COLUMNS, math.nan)
    trial.update(throughput_rps=90.0)
    cross_check.fill_trial(trial, wrk_result(100.0))
    assert trial["flags"] == cross_check.DISAGREES_FLAG
    assert (trial["oracle_throughput_rps"], trial["oracle_latency_p50_ms"],
            trial["oracle_latency_p99_ms"]) == (100.0, 10.0, 20.0)
    assert trial["oracle_agreement"] == pytest.approx(0.9)
    cross_check.fill_trial(trial, wrk_result(100.0))  # checked again: still one flag
    assert trial["flags"] == cross_check.DISAGREES_FLAG


STREAM_REASON = ("not cross-checked: websocket is a stream scenario; wrk drives request/response "
                 "HTTP only")
WRK_ERRORS = "wrk errors: connect 0, read 1, write 0, status 0, timeout 0"


def test_the_table_reads_oracle_csvs_own_reasons() -> None:
    """oracle.csv carries ``oracle_reason``; a reason given by trial id wins over it."""
    rows = pd.DataFrame([
        {"trial_id": "a", "server": "uvicorn", "users": 8, "repeat": 1, "throughput_rps": 99.0,
         "latency_p50_ms": 1.0, "latency_p99_ms": 2.0, "oracle_throughput_rps": 100.0,
         "oracle_latency_p50_ms": 1.0, "oracle_latency_p99_ms": 2.0,
         "oracle_reason": WRK_ERRORS},
        {"trial_id": "b", "server": "uvicorn", "users": 4, "repeat": 1, "throughput_rps": 50.0,
         "latency_p50_ms": 1.0, "latency_p99_ms": 2.0, "oracle_throughput_rps": math.nan,
         "oracle_latency_p50_ms": math.nan, "oracle_latency_p99_ms": math.nan,
         "oracle_reason": "not cross-checked: trial failed"}])
    table = cross_check.agreement_table(rows)
    assert table["users"].tolist() == [4, 8]
    assert table["status"].tolist() == ["not-checked", "agrees"]
    assert table["reason"].tolist() == ["not cross-checked: trial failed", WRK_ERRORS]
    assert cross_check.agreement_table(rows, {"a": "given"})["reason"].tolist()[1] == "given"


@needs_wrk
def test_a_trial_left_out_is_recorded_with_the_oracles_settings(tmp_path: Path) -> None:
    plan = RunPlan(scenario=load("io-heavy"), servers=[SERVERS["uvicorn"]], users=(4,),
                   warmup_s=1.0, duration_s=2.0, repeats=1, workers=1, server_cpus=[0],
                   load_cpus=[1], results_dir=tmp_path)
    trial = {"trial_id": "uvicorn-l1-u4-r1", "status": "failed", "load_mode": "closed-loop",
             "users": 4, "flags": ""}
    # no deployment: a trial that is not cross-checked never reaches the server
    meta = cross_check.cross_check_trial(dict(trial), None,  # type: ignore[arg-type]
                                         plan, run_dir=tmp_path, meta=RunMeta())
    assert meta.oracle.tool == "wrk" and meta.oracle.path == shutil.which("wrk")
    assert meta.oracle.version and meta.oracle.version.startswith("wrk")
    assert meta.oracle.tolerance == cross_check.AGREEMENT_TOLERANCE
    assert cross_check.reasons_from_meta(meta) == {
        "uvicorn-l1-u4-r1": "not cross-checked: trial failed"}
    assert not (tmp_path / "oracle").exists()  # wrk never ran against anything


@needs_wrk
@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="the stored run used CPUs 0, 1")
def test_a_stored_stream_run_is_all_not_checked_and_other_servers_rows_are_kept(
        tmp_path: Path) -> None:
    run_dir = tmp_path / "ws"
    shutil.copytree(STORED / "websocket-echo", run_dir)
    stored = pd.read_csv(run_dir / "trials.csv")
    first = cross_check.cross_check_run(run_dir, ["gunicorn-sync"])
    assert set(first["server"]) == {"gunicorn-sync"}
    both = cross_check.cross_check_run(run_dir, ["uvicorn"])
    on_disk = pd.read_csv(run_dir / "oracle.csv")
    assert tuple(on_disk.columns) == cross_check.ORACLE_COLUMNS
    assert len(both) == len(on_disk) == len(stored)
    assert sorted(on_disk["trial_id"]) == sorted(stored["trial_id"])
    assert list(zip(both["server"], both["users"], strict=True)) == sorted(
        zip(stored["server"], stored["users"], strict=True))
    assert set(on_disk["oracle_status"]) == {"not-checked"}
    assert set(on_disk["oracle_reason"]) == {STREAM_REASON}
    assert on_disk["oracle_throughput_rps"].isna().all()
    assert not list(run_dir.glob("logs/oracle-server-*"))  # no server was deployed
    with pytest.raises(UserError, match=r"^--servers hypercorn: not in this run \(it has: "
                                        r"gunicorn-sync, uvicorn\)$"):
        cross_check.cross_check_run(run_dir, ["hypercorn", "uvicorn"])
