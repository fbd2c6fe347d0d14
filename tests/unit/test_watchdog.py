"""harness.watchdog on real run folders and real processes: it waits for the recorded
harness to exit, stops the run's recorded process groups, marks only a ``running`` run
crashed (a dry run touches nothing), names an engine it could not ask, and removes only
a dead harness's own children folder."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from harness import procs, watchdog
from harness.atomic import atomic_write_json
from harness.runmeta import RunMeta
from tests.support import dead_identity

RUN_ID = "20260101T000000Z-io-heavy-0e0e0e"


def write_run(run_dir: Path, *, status: str, harness: dict[str, Any],
              groups: list[dict[str, Any]] | None = None, **extra: Any) -> None:
    """A run folder as a run writes it: run.json and the groups it started."""
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "run.json", {"schema_version": 2, "run_id": run_dir.name,
                                             "status": status, "harness": harness, **extra})
    atomic_write_json(run_dir / watchdog.GROUPS_FILE, {"harness": harness,
                                                       "groups": groups or []})


def test_the_run_suffix_is_the_ids_six_hex_tail() -> None:
    assert watchdog.run_suffix(RUN_ID) == "0e0e0e"
    assert watchdog.run_suffix("20260101T000000Z-io-heavy-ABC123") is None  # not lower hex
    assert watchdog.run_suffix("20260101T000000Z-io-heavy-abc12") is None
    assert watchdog.run_suffix("hand-made") is None


def test_a_dead_runs_group_is_stopped_and_the_run_marked_crashed(tmp_path: Path) -> None:
    leader = procs.spawn([sys.executable, "-c", "import time; time.sleep(60)"], cpus=[0],
                         log_path=tmp_path / "left.log")
    try:
        group = {"pgid": leader.pid, "leader": procs.identity(leader.pid), "argv": []}
        run_dir = tmp_path / RUN_ID
        write_run(run_dir, status="running", harness=dead_identity(), groups=[group])

        dry = watchdog.clean_run(run_dir, dry_run=True, docker=False)
        assert (dry.status, dry.groups, dry.marked_crashed) == ("running", [leader.pid], False)
        assert leader.poll() is None
        assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

        done = watchdog.clean_run(run_dir, docker=False, detected_by="a test")
        assert done.groups == [leader.pid] and done.marked_crashed
        assert procs.live_members([leader.pid]) == []
        assert leader.wait(timeout=5) == -signal.SIGTERM  # asked to stop, in its grace time
        meta = RunMeta.from_dict(json.loads((run_dir / "run.json").read_text()))
        assert meta.status == "crashed" and meta.ended_at
        assert meta.crash.detected_by == "a test" and meta.crash.stopped_groups == (leader.pid,)
        # Reaped (by us here; a dead harness's children by their new parent) and
        # crashed: a second sweep finds nothing to stop and changes nothing.
        again = watchdog.clean_run(run_dir, docker=False)
        assert (again.status, again.groups, again.marked_crashed) == ("crashed", [], False)
    finally:
        procs.stop_group(leader, grace_s=2)


def test_main_cleans_after_a_gone_harness_and_removes_only_its_children_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    children = Path(tempfile.mkdtemp(prefix="bench-children-"))
    elsewhere = tmp_path / "bench-children-not-in-tmp"
    elsewhere.mkdir()
    try:
        finished = tmp_path / "finished" / RUN_ID
        # The engine the run used, as run.json records it: no engine answers there.
        engine = {"env": {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}}
        write_run(finished, status="finished", harness=dead_identity(), engine=engine,
                  children={"dir": str(elsewhere)})
        assert watchdog.main([str(finished)]) == 0
        out = capsys.readouterr().out
        assert "no docker engine answered" in out and "run.json left finished" in out
        assert elsewhere.is_dir()  # not a bench-children-* folder of the temp folder

        crashed = tmp_path / "crashed" / RUN_ID
        write_run(crashed, status="running", harness=dead_identity(), engine=engine,
                  children={"dir": str(children)})
        assert watchdog.main([str(crashed)]) == 0
        assert "run.json marked crashed" in capsys.readouterr().out
        assert not children.exists()
    finally:
        if children.exists():
            children.rmdir()


def test_main_refuses_a_run_that_names_no_harness(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert watchdog.main([]) == 2
    assert capsys.readouterr().err == "usage: python -m harness.watchdog RUN_DIR\n"
    (tmp_path / "run.json").write_text('{"schema_version": 2, "status": "running"}')
    assert watchdog.main([str(tmp_path)]) == 2
    assert "names no harness pid" in capsys.readouterr().err
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"


def test_waiting_for_the_harness_ends_when_it_exits() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.1)"])
    try:
        recorded = procs.identity(proc.pid)
        assert recorded is not None
        started = time.monotonic()
        watchdog.wait_for_exit(recorded)
        waited = time.monotonic() - started
        assert proc.poll() is not None  # it had exited (pidfd readable on exit)
        assert waited < 10  # woken by the exit, not by select's 60 s timeout
        started = time.monotonic()
        watchdog.wait_for_exit(recorded)  # already gone: at once
        assert time.monotonic() - started < 1
        assert procs.same_process(recorded) is False
    finally:
        proc.kill()
        proc.wait()
