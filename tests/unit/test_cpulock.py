"""harness.cpulock with real flocks in a temporary lock folder: a held CPU refuses a second
taker (naming the holder, or waiting a bounded time), a refused acquire keeps nothing, and
the folder and files are made shareable by every user."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from harness import cpulock
from harness.errors import UserError


def test_the_lock_folder_is_bench_lock_dir_else_the_shared_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpulock.lock_dir({}) == cpulock.DEFAULT_DIR == Path("/tmp/bench-locks")
    assert cpulock.lock_dir({"BENCH_LOCK_DIR": ""}) == cpulock.DEFAULT_DIR
    folder = tmp_path / "made" / "here"
    monkeypatch.setenv("BENCH_LOCK_DIR", str(folder))
    with cpulock.acquire([1]) as locks:  # no folder given: $BENCH_LOCK_DIR, created
        assert locks.folder == folder
        # shared like /tmp (world-writable, sticky), each file writable by every user
        assert stat.S_IMODE(folder.stat().st_mode) == 0o1777
        assert stat.S_IMODE((folder / "cpu-1.lock").stat().st_mode) == 0o666


def test_a_held_cpu_refuses_a_second_taker_and_names_the_run(tmp_path: Path) -> None:
    """flock is per open file: a second acquire, even in this process, conflicts."""
    with cpulock.acquire([3, 1, 3], folder=tmp_path, run_id="R-1", command="bench run") as held:
        assert held.cpus == [1, 3]  # each CPU once, ascending (no deadlock between runs)
        on_disk = json.loads((tmp_path / "cpu-3.lock").read_text())
        assert on_disk == {"pid": os.getpid(), "run_id": "R-1", "command": "bench run"}
        with pytest.raises(cpulock.CpuBusy) as info:
            cpulock.acquire([2, 3], folder=tmp_path)
        message = str(info.value)
        assert message.startswith(f"CPU 3 is in use by run R-1 (pid {os.getpid()}): ")
        assert "waited" not in message and "--wait-cpus SECONDS" in message
        # the refused acquire let CPU 2 go again: nothing is held half-way
        with cpulock.acquire([2], folder=tmp_path) as other:
            assert other.waited_s < 1
    with cpulock.acquire([1, 3], folder=tmp_path):  # released on leaving the block
        pass


def test_waiting_for_a_busy_cpu_is_bounded_and_said(tmp_path: Path) -> None:
    with cpulock.acquire([0], folder=tmp_path):
        started = time.monotonic()
        with pytest.raises(cpulock.CpuBusy, match=r"waited 0\.1 s; wait with --wait-cpus"):
            cpulock.acquire([0], folder=tmp_path, wait_s=0.1)
        waited = time.monotonic() - started
    assert 0.1 <= waited < 5  # polls every POLL_S (0.2 s): at least the wait, never forever


@pytest.mark.parametrize(("text", "said"), [
    ('{"pid": 41, "run_id": "R-9"}', "run R-9 (pid 41)"),
    ('{"pid": 41}', "pid 41 (starting a run)"),
    ('{"pid": 41, "task": "bench cross-check of run R-9"}', "bench cross-check of run R-9 (pid 41)"),
    ("", "another process"),           # locked, nothing written yet
    ("not json", "another process"),
    ('["pid", 41]', "another process"),
])
def test_the_holder_is_what_its_file_says(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "cpu-0.lock"
    path.write_text(text)
    assert cpulock.holder(path) == said
    assert cpulock.holder(tmp_path / "missing.lock") == "another process"


def test_a_lock_folder_that_cannot_be_made_is_one_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"^CPU lock folder .*/file/locks: ") as info:
        cpulock.acquire([0], folder=blocker / "locks")
    assert not isinstance(info.value, cpulock.CpuBusy) and "\n" not in str(info.value)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
def test_a_wait_that_is_not_a_number_of_seconds_is_one_user_error(seconds: float) -> None:
    with pytest.raises(UserError, match=r"^--wait-cpus .*: must be a number of seconds >= 0$"):
        cpulock.wait_option(seconds)
    assert cpulock.wait_option(0.0) == 0.0 and cpulock.wait_option(2.5) == 2.5
