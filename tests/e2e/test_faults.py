"""Faults during a run: the run goes on, records what happened, keeps what it measured."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness.backends import local
from harness.load import LoadSpec, run_level
from harness.results import load_run
from harness.runner import Runner, SilentReporter
from harness.servers import SERVERS, ServerConfig
from tests.conftest import project_processes, serve, stop_bench
from tests.support import BENCH, only_run, plan, server_pids

BROKEN = ServerConfig("broken", "wsgi", frozenset({"http"}),
                      ("{python}", "-c", "import sys; print('cannot import apps: boom'); sys.exit(3)"))


class KillServer(SilentReporter):
    """Kills the server's whole process group 1.3 s into the first loaded trial (its
    window opens after the 0.5 s warm-up and lasts 1.5 s)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.killed = False

    def tick(self, elapsed_s: float) -> None:
        if not self.killed and elapsed_s > 1.3:
            for p in server_pids(self.run_id):
                with_suppress(lambda p=p: os.killpg(p.pid, signal.SIGKILL))
            self.killed = True


def with_suppress(fn: Any) -> None:
    try:
        fn()
    except (ProcessLookupError, PermissionError):
        pass


@pytest.mark.alone
@pytest.mark.slow
def test_server_that_fails_to_start_or_crashes_mid_trial_is_failed_and_the_run_goes_on(
        tmp_path: Path) -> None:
    """A config that exits at start (both its levels failed, with its exit code and last
    words), then one whose server is killed mid-trial (that trial failed, what it measured
    kept, a fresh server for its next level), then one that runs: the run goes on past
    each fault and completes."""
    runner = Runner(plan(tmp_path, [BROKEN, SERVERS["gunicorn-sync"], SERVERS["granian-asgi"]],
                         users=(4, 8), warmup_s=0.5, duration_s=1.5))
    runner.reporter = KillServer(runner.run_id)
    state = runner.execute()
    broken, broken2, crashed, after_restart, other, other2 = state.trials
    for t in (broken, broken2):
        assert t["status"] == "failed"
        assert "exited with code 3" in t["reason"] and "boom" in t["reason"], t["reason"]
    assert crashed["status"] == "failed"
    assert "server exited with code" in crashed["reason"]
    assert crashed["requests"] > 0  # what was measured before the crash is kept
    # The next level of the same config gets a fresh server; the next config runs
    # (`invalid` only if this shared machine starved the load generator, which the
    # harness then says).
    for t in (after_restart, other, other2):
        assert t["status"] in ("ok", "invalid") and t["throughput_rps"] > 0, t["reason"]
    assert state.meta.status == "complete"
    assert project_processes(runner.run_id) == []


@pytest.mark.alone  # starts locust
def test_locust_that_fails_is_recorded_with_its_log(tmp_path: Path) -> None:
    with serve("uvicorn", tmp_path) as (port, _):
        spec = LoadSpec(users=1, warmup_s=0, duration_s=1, method="GET", path="/health",
                        expected_status=200, expected_body=b"ok", name="x",
                        user_class="NoSuchUser")
        result = run_level(spec, port=port, cpus=[1], trial_dir=tmp_path, trial_id="t",
                           log_dir=tmp_path, clock=time.monotonic)
    assert "without results" in result.problem and "NoSuchUser" in result.problem


@pytest.mark.alone
@pytest.mark.slow
def test_port_taken_between_choosing_and_binding_is_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    real = local.free_port
    monkeypatch.setattr(local, "free_port", lambda: next(ports, None) or real())
    try:
        # uvicorn exits at once on a taken port (gunicorn retries the bind for 5 s first).
        server = local.LocalServer(SERVERS["uvicorn"], workers=1, cpus=[0],
                                   log_path=tmp_path / "s.log", clock=time.monotonic)
        try:
            assert server.port != taken
            assert "already in use" in (tmp_path / "s.log").read_text().lower()
        finally:
            server.stop()
    finally:
        squatter.close()


@pytest.mark.alone
@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_tears_down_keeps_results_and_exits_128_plus_signal(
        tmp_path: Path, sig: signal.Signals, code: int) -> None:
    proc = subprocess.Popen(
        [*BENCH, "run", "--scenario", "io-heavy", "--servers", "gunicorn-sync,uvicorn",
         "--users", "4,8", "--duration", "1.5", "--warmup", "0.5",
         "--results-dir", str(tmp_path / "results"), "--report", str(tmp_path / "r.html")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the first trial is done and the second one is under way.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = list((tmp_path / "results").glob("*/run.json"))
            if runs and len(json.loads(runs[0].read_text())["trials"]) >= 1:
                break
            time.sleep(0.2)
        time.sleep(0.5)  # into the next trial (or the next server's start)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        stop_bench(proc)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    run_dir = only_run(tmp_path / "results")
    run = load_run(run_dir)
    assert run.meta.status == "interrupted"
    assert len(run.trials) >= 1 and (run.trials["status"] == "ok").iloc[0]
    assert (tmp_path / "r.html").stat().st_size > 100_000  # the report still renders
    assert project_processes(run_dir.name) == []


@pytest.mark.alone  # starts locust
def test_wrong_answers_fail_every_level_without_loading(tmp_path: Path) -> None:
    # A server that is healthy but does not serve the scenario: verification catches it.
    www = tmp_path / "www"
    www.mkdir()
    (www / "health").write_text("ok")
    static = ServerConfig("static-files", "wsgi", frozenset({"http"}),
                          ("{python}", "-m", "http.server", "--bind", "{host}", "--directory",
                           str(www), "{port}"))
    state = Runner(plan(tmp_path / "results", [static], users=(4, 8))).execute()
    assert [t["status"] for t in state.trials] == ["failed", "failed"]
    assert all("verification failed for /io?latency_ms=20: got 404" in t["reason"]
               for t in state.trials)
    assert len(state.meta.deployments) == 1  # started once, not loaded, not restarted
    assert not any((tmp_path / "results").glob("*/requests/*/*.csv"))
