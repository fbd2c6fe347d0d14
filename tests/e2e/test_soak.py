"""Endurance: many short runs back to back, some interrupted, some with a killed server.

Afterwards no process of the project remains, and the harness's own open file
descriptors, threads and child processes did not grow.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from harness.runner import Runner, SilentReporter
from harness.servers import SERVERS
from tests.conftest import project_processes
from tests.support import plan, server_pids

MODES = ("interrupt", "kill-server", "clean")
#: Every (mode, server config) pair exactly once: 3 modes x 3 configs, as a Latin square
#: (run i: config i % 3, mode (i + i // 3) % 3), modes interleaved, not in blocks.
RUNS = 9


class Chaos(SilentReporter):
    def __init__(self, runner: Runner, mode: str) -> None:
        self.runner, self.mode, self.done = runner, mode, False

    def tick(self, elapsed_s: float) -> None:
        if self.done or elapsed_s < 1.0:
            return
        self.done = True
        if self.mode == "interrupt":
            raise KeyboardInterrupt
        if self.mode == "kill-server":
            for p in server_pids(self.runner.run_id):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.alone
@pytest.mark.slow
def test_soak_no_leak_no_leftovers(tmp_path: Path) -> None:
    me = psutil.Process()
    configs = [SERVERS["uvicorn"], SERVERS["gunicorn-sync"], SERVERS["granian-wsgi"]]
    baseline: tuple[int, int, int] | None = None
    statuses = []
    for i in range(RUNS):
        mode = MODES[(i + i // 3) % len(MODES)]
        runner = Runner(plan(tmp_path, [configs[i % 3]], users=(4,), warmup_s=0.0,
                             duration_s=1.5))
        runner.reporter = Chaos(runner, mode)
        try:
            state = runner.execute()
        except KeyboardInterrupt:
            state = runner.state
        statuses.append((mode, state.meta.status, [t["status"] for t in state.trials]))
        assert project_processes(runner.run_id) == [], (mode, i)
        usage = (me.num_fds(), me.num_threads(), len(me.children(recursive=True)))
        if i == 1:
            baseline = usage  # after imports and the first runs warmed caches up
        elif baseline is not None:  # 7 runs after it: a leak of one per run shows
            assert usage[0] <= baseline[0] + 3 and usage[1] <= baseline[1], (i, usage, baseline)
            assert usage[2] == 0, (i, usage)
    assert ("interrupt", "interrupted", []) in statuses
    assert any(m == "kill-server" and s == "complete" and t == ["failed"] for m, s, t in statuses)
    assert any(m == "clean" and t == ["ok"] for m, s, t in statuses)
