"""``bench clean`` without a docker engine: which runs it takes for dead (``running`` in
run.json, on this host, with its recorded bench process gone, a recycled pid included), the
runs it leaves alone, and its one-line refusal of a folder that is not there."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from harness import procs
from harness.cli_clean import dead_runs
from harness.results import atomic_write_json
from tests.support import bench_here
from tests.synth import write_run


def recorded(run_dir: Path, *, status: str = "running", **harness: Any) -> Path:
    """``run_dir``'s run.json with ``status`` and the bench process recorded as ``harness``
    (default: this test process, on this host)."""
    meta = json.loads((run_dir / "run.json").read_text())
    me = procs.identity(os.getpid())
    assert me is not None
    meta.update(status=status, harness={**me, "host": socket.gethostname(), **harness})
    atomic_write_json(run_dir / "run.json", meta)
    return run_dir


def test_a_running_run_whose_bench_is_gone_is_dead_and_the_others_are_not(
        tmp_path: Path) -> None:
    me = procs.identity(os.getpid())
    assert me is not None
    alive = recorded(write_run(tmp_path, 1, [10.0]))
    recycled = recorded(write_run(tmp_path, 2, [10.0]), start_ticks=me["start_ticks"] - 1)
    other_boot = recorded(write_run(tmp_path, 3, [10.0]), boot_id="another-boot")
    recorded(write_run(tmp_path, 4, [10.0]), start_ticks=0, host="another-host")
    recorded(write_run(tmp_path, 5, [10.0]), status="complete", start_ticks=0)
    damaged = write_run(tmp_path, 6, [10.0])
    (damaged / "run.json").write_text('{"status": "running", "harness": ')
    assert dead_runs(tmp_path) == sorted([recycled, other_boot])
    assert dead_runs(recycled) == [recycled]  # a run folder itself
    assert dead_runs(alive) == []


def test_nothing_to_clean_touches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    alive = recorded(write_run(tmp_path, 1, [10.0]))
    before = (alive / "run.json").read_bytes()
    for dry in ((), ("--dry-run",)):
        code, out, err = bench_here(capsys, monkeypatch, "clean", str(tmp_path), *dry)
        assert code == 0 and err == ""
        assert " ".join(out.split()) == (f"nothing to clean in {tmp_path}: no run there is "
                                         "'running' with its bench process gone")
    assert (alive / "run.json").read_bytes() == before


def test_a_folder_that_is_not_there_is_one_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("")
    for path in (tmp_path / "none", a_file):
        code, out, err = bench_here(capsys, monkeypatch, "clean", str(path))
        assert (code, out) == (2, "") and err == f"bench: error: {path}: no such folder\n"
