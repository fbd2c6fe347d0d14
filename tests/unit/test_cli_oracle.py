"""``bench cross-check RUN`` without starting a server: wrk missing is one line before the
run is read, a server the run does not have is one line naming those it has, and a stream
run (which wrk cannot drive) is written to oracle.csv as not checked, trial by trial."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.support import bench_here
from tests.synth import STORED

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None,
                               reason="no wrk on PATH (apt-get install wrk)")


@pytest.fixture
def stored_run(tmp_path: Path) -> Iterator[Path]:
    """A copy of the stored websocket-echo run (2 unsupported trials, 2 ok). The command
    pins its own process to the run's load CPUs, as ``bench run`` does; in this process
    that would outlive the test, so the CPU affinity is put back afterwards."""
    affinity = os.sched_getaffinity(0)
    run = shutil.copytree(STORED / "websocket-echo", tmp_path / "ws")
    try:
        yield run
    finally:
        os.sched_setaffinity(0, affinity)


def one_line(code: int, out: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1, (code, out, err)
    assert lines[0].startswith("bench: error: ")
    return lines[0]


def test_no_wrk_is_one_line_before_the_run_is_read(
        stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for run in (stored_run, tmp_path / "no-run"):
        line = one_line(*bench_here(capsys, monkeypatch, "cross-check", str(run)))
        assert line == ("bench: error: wrk not found on PATH: the independent load generator "
                        "for cross-checks; install it (apt-get install wrk)")
    assert not (stored_run / "oracle.csv").exists()


@needs_wrk
def test_a_server_not_in_the_run_is_refused_naming_those_it_has(
        stored_run: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    line = one_line(*bench_here(capsys, monkeypatch, "cross-check", str(stored_run),
                                "--servers", "uvicorn,hypercorn"))
    assert line == ("bench: error: --servers hypercorn: not in this run "
                    "(it has: gunicorn-sync, uvicorn)")
    assert not (stored_run / "oracle.csv").exists()


@needs_wrk
def test_a_stream_run_is_recorded_as_not_checked_without_a_server(
        stored_run: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = bench_here(capsys, monkeypatch, "cross-check", str(stored_run))
    assert code == 0 and err == ""
    assert out.strip().splitlines()[-1] == f"oracle: {stored_run / 'oracle.csv'}"
    run_id = json.loads((stored_run / "run.json").read_text())["run_id"]
    assert f"bench vs wrk · {run_id}" in out
    oracle = pd.read_csv(stored_run / "oracle.csv")
    trials = pd.read_csv(stored_run / "trials.csv")
    assert sorted(oracle["trial_id"]) == sorted(trials["trial_id"])
    assert set(oracle["oracle_status"]) == {"not-checked"}
    assert set(oracle["oracle_reason"]) == {("not cross-checked: websocket is a stream scenario; "
                                            "wrk drives request/response HTTP only")}
    assert oracle["oracle_throughput_rps"].isna().all()
    assert out.count("not-checked") == len(trials)
    assert not list(stored_run.glob("logs/oracle-server-*"))  # no server was deployed


@needs_wrk
def test_the_runs_cpus_are_locked_as_bench_run_locks_them(
        stored_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run holding one of the stored run's CPUs: the cross-check is refused in one line
    naming it (also after --wait-cpus), writes nothing; once the run lets go it goes
    ahead, and lets the CPUs go itself when done."""
    from harness import cpulock

    monkeypatch.setenv("BENCH_LOCK_DIR", str(tmp_path / "locks"))
    cpus = json.loads((stored_run / "run.json").read_text())["cpus"]
    held = cpulock.acquire([cpus["load"][0]], run_id="holder-run")
    try:
        for wait in ((), ("--wait-cpus", "0.3")):
            line = one_line(*bench_here(capsys, monkeypatch, "cross-check", str(stored_run),
                                        *wait))
            assert f"CPU {cpus['load'][0]} is in use by run holder-run (pid {os.getpid()})" \
                in line, line
        assert not (stored_run / "oracle.csv").exists()
    finally:
        held.release()
    code, _, err = bench_here(capsys, monkeypatch, "cross-check", str(stored_run))
    assert code == 0 and err == "", err
    assert (stored_run / "oracle.csv").is_file()
    with cpulock.acquire([*cpus["server"], *cpus["load"]]):  # free again, at once
        pass
