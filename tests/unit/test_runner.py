"""harness.runner without a load run: a run whose stacks cannot serve the scenario
records every trial ``unsupported`` with the app's reason, stacks interleaved across
repeats, without starting a server, and ends ``complete`` with its files written; a
SIGTERM mid-run ends it ``interrupted`` with what it recorded kept; the user classes and
headline records it names per protocol are the ones the load generator has and writes."""

from __future__ import annotations

import ast
import json
import os
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness import PACKAGE_DIR
from harness.interrupts import INTERRUPT_SIGNALS, Interrupted
from harness.plan import RunPlan
from harness.results import read_records
from harness.runner import PRIMARY_RECORDS, USER_CLASSES, Runner, SilentReporter
from harness.scenarios import load
from harness.servers import SERVERS
from harness.stacks import APPS, Stack
from tests.conftest import project_processes
from tests.synth import STORED

#: Neither can serve /ws: Flask is WSGI, Django has no WebSocket without Channels.
STACKS = (Stack(SERVERS["gunicorn-sync"], APPS["flask"]),
          Stack(SERVERS["uvicorn"], APPS["django"]))


def unsupported_plan(tmp_path: Path) -> RunPlan:
    return RunPlan(scenario=load("websocket-echo"),
                   servers=[SERVERS["gunicorn-sync"], SERVERS["uvicorn"]], users=(2, 4),
                   warmup_s=0.5, duration_s=1.0, repeats=2, workers=1, server_cpus=[0],
                   load_cpus=[1], results_dir=tmp_path, stacks=STACKS)


@pytest.fixture
def run_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Runner names its run in this process's environment; put it back afterwards."""
    monkeypatch.setenv("BENCH_RUN_ID", "")


@pytest.mark.usefixtures("run_env")
def test_unsupported_stacks_are_recorded_interleaved_without_a_server(tmp_path: Path) -> None:
    runner = Runner(unsupported_plan(tmp_path))
    assert json.loads((runner.run_dir / "run.json").read_text())["status"] == "running"
    state = runner.execute()
    ids = [t["trial_id"] for t in state.trials]
    assert ids == [f"{stack}-l{level}-u{users}-r{repeat}" for repeat in (1, 2)
                   for stack in ("gunicorn-sync+flask", "uvicorn+django")
                   for level, users in ((1, 2), (2, 4))]
    assert {t["status"] for t in state.trials} == {"unsupported"}
    for t in state.trials:
        stack = next(s for s in STACKS if s.app.name == t["app"])
        assert t["reason"] == stack.app.unsupported("/ws") != ""
    meta = json.loads((runner.run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and meta["ended_at"] and meta["run_id"] == runner.run_id
    on_disk = pd.read_csv(runner.run_dir / "trials.csv")
    assert on_disk["trial_id"].tolist() == ids
    assert (runner.run_dir / "summary.csv").is_file()
    assert (runner.run_dir / "capacity.csv").is_file()
    assert sorted(p.name for p in (runner.run_dir / "logs").iterdir()) == ["watchdog.log"]
    assert not project_processes(runner.run_id)  # the watchdog was stopped too


class InterruptAfterFirstTrial(SilentReporter):
    """Sends this process a real SIGTERM once the first trial is recorded."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def trial_finished(self, trial: dict[str, Any]) -> None:
        self.finished.append(trial["trial_id"])
        if len(self.finished) == 1:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.usefixtures("run_env")
def test_sigterm_mid_run_ends_it_interrupted_with_its_trials_kept(tmp_path: Path) -> None:
    before = {sig: signal.getsignal(sig) for sig in INTERRUPT_SIGNALS}
    reporter = InterruptAfterFirstTrial()
    runner = Runner(unsupported_plan(tmp_path), reporter)
    with pytest.raises(Interrupted) as caught:
        runner.execute()
    assert caught.value.exit_code == 143
    assert reporter.finished == ["gunicorn-sync+flask-l1-u2-r1"]
    meta = json.loads((runner.run_dir / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["ended_at"]
    assert [t["trial_id"] for t in meta["trials"]] == reporter.finished
    assert pd.read_csv(runner.run_dir / "trials.csv")["trial_id"].tolist() == reporter.finished
    assert {sig: signal.getsignal(sig) for sig in INTERRUPT_SIGNALS} == before
    assert not project_processes(runner.run_id)


def _bound_names(path: Path) -> set[str]:
    """Names a module binds at its top level: classes, and names imported from others."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_each_protocol_names_a_user_class_of_the_locustfile_and_a_record_it_writes() -> None:
    """locust is given the locustfile and a class name: the class must be found there.
    The headline records are the names a real stored run's locust wrote."""
    assert set(USER_CLASSES) == set(PRIMARY_RECORDS) == {"http", "sse", "websocket"}
    assert set(USER_CLASSES.values()) <= _bound_names(PACKAGE_DIR / "loadgen" / "locustfile.py")
    for run, protocol in (("io-heavy", "http"), ("websocket-echo", "websocket")):
        names: set[str] = set()
        for folder in (STORED / run / "requests").iterdir():
            names.update(read_records(folder)["name"])
        assert PRIMARY_RECORDS[protocol] in names, (run, names)
