"""The session's shared runs (tests/conftest.py), made here among the ``alone`` tests,
before the tests that read them run side by side (tests/alone.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest


@pytest.mark.slow
@pytest.mark.alone
@pytest.mark.timeout(900)
def test_every_shared_run_is_complete_with_its_trials_ok(
        io_sweep: Path, cpu_run: Path, sse_run: Path, websocket_run: Path,
        compare_runs: dict[str, Path], saturated_run: tuple[Path, int, str]) -> None:
    runs = {"io_sweep": io_sweep, "cpu_run": cpu_run, "sse_run": sse_run,
            "websocket_run": websocket_run, **{f"compare {k}": v for k, v in compare_runs.items()}}
    for name, run_dir in runs.items():
        meta = json.loads((run_dir / "run.json").read_text())
        assert meta["status"] == "complete", name
        trials = pd.read_csv(run_dir / "trials.csv")
        # a stream run's WSGI server cannot serve WebSocket: unsupported, said so
        allowed = {"ok", "unsupported"} if name in ("sse_run", "websocket_run") else {"ok"}
        assert set(trials["status"]) <= allowed and (trials["status"] == "ok").any(), name
        assert len(trials) == len(meta["trials"]), name
    # The saturated run is made to fail its one trial (its readers check why).
    run_dir, code, _ = saturated_run
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert code == 3 and list(pd.read_csv(run_dir / "trials.csv")["status"]) == ["invalid"]
