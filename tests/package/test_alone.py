"""The suite's own rule (tests/alone.py): a test that loads the machine runs alone.

What is checked: what counts as load, that the guard fails a test that starts load
without the mark (before anything starts), and that the lock keeps a worker's test from
running while another worker holds the machine alone (two real processes, real flocks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from harness import PROJECT_ROOT, procs
from tests import alone


@pytest.mark.parametrize(("argv", "found"), [
    ([sys.executable, "-m", "locust", "-f", "x.py", "--headless"], "locust"),
    (["/usr/bin/wrk", "-t1", "http://127.0.0.1:1/"], "wrk"),
    ([sys.executable, "-m", "harness.cli", "run", "--scenario", "io-heavy"], "bench run"),
    ([sys.executable, "-m", "harness.cli", "agent", "--master", "127.0.0.1:1"], "bench agent"),
    ([sys.executable, "-m", "harness.cli", "run", "--dry-run"], None),
    ([sys.executable, "-m", "harness.cli", "run", "--help"], None),
    ([sys.executable, "-m", "harness.cli", "list", "servers"], None),
    ([sys.executable, "-m", "gunicorn", "harness.apps.raw:wsgi_app"], None),
])
def test_what_loads_the_machine(argv: list[str], found: str | None) -> None:
    assert alone.load_generator(argv) == found


def test_a_load_generator_without_the_mark_fails_before_it_starts(tmp_path: Path) -> None:
    log = tmp_path / "locust.log"
    with pytest.raises(pytest.fail.Exception, match="not marked @pytest.mark.alone"):
        procs.spawn([sys.executable, "-m", "locust", "--version"], cpus=[0], log_path=log)
    assert not log.exists()  # refused before anything was started
    with alone.machine_alone():  # the machine held alone: allowed
        alone.check("locust")


@pytest.mark.alone
def test_a_marked_test_may_load() -> None:
    assert alone.holds_machine()
    alone.check("locust")


HOLDER = textwrap.dedent("""
    import sys, time
    from tests import alone
    with alone.machine_alone():
        print(time.time(), flush=True)  # held from now on, for argv[1] seconds
        time.sleep(float(sys.argv[1]))
""")
WAITER = textwrap.dedent("""
    import fcntl, time
    from tests import alone
    alone._hold(fcntl.LOCK_SH)
    print(time.time(), flush=True)  # granted
""")


def test_a_shared_test_waits_while_another_worker_holds_the_machine() -> None:
    """Two processes as two xdist workers of one session: while one holds the machine
    alone for 1.5 s, the other's shared lock is granted only after it lets go."""
    uid = f"test-{uuid.uuid4().hex}"
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw9", "PYTEST_XDIST_TESTRUNUID": uid,
           "PYTHONPATH": str(PROJECT_ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "1.5"], env=env, text=True,
                              stdout=subprocess.PIPE, cwd=PROJECT_ROOT)
    try:
        assert holder.stdout is not None
        held_at = float(holder.stdout.readline())
        waiter = subprocess.run([sys.executable, "-c", WAITER], env=env, text=True,
                                capture_output=True, cwd=PROJECT_ROOT, timeout=60, check=True)
        granted_at = float(waiter.stdout)
    finally:
        holder.wait(timeout=30)
        alone._session_file(uid, "lock").unlink(missing_ok=True)
    assert holder.returncode == 0
    assert granted_at >= held_at + 1.5, granted_at - held_at  # not while it was held
