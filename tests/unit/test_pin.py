"""harness.pin, run as the exec wrapper it is: the program runs in the pin's own process
(exec, no fork) on exactly the CPUs named; ``--die-with`` ends it when its parent dies,
or refuses to start it when that parent is already gone; bad arguments are refused."""

from __future__ import annotations

import json
import os
import sys

import psutil
import pytest

from harness import procs

PIN = [sys.executable, "-m", "harness.pin"]
USABLE = sorted(os.sched_getaffinity(0))


def test_the_program_replaces_the_pin_and_runs_on_the_cpus_named() -> None:
    cpu = USABLE[-1]
    show = "import json, os; print(json.dumps([os.getppid(), sorted(os.sched_getaffinity(0))]))"
    r = procs.run([*PIN, str(cpu), "--", sys.executable, "-c", show], timeout_s=20,
                  env=procs.child_env(), check=True)
    parent, cpus = json.loads(r.stdout)
    assert cpus == [cpu]
    assert parent == os.getpid()  # our own child: the pin exec'd it, no process between


@pytest.mark.skipif(len(USABLE) < 2, reason="needs two usable CPUs")
def test_a_cpu_list_pins_to_all_of_them() -> None:
    show = "import os; print(sorted(os.sched_getaffinity(0)))"
    cpus = USABLE[:2]
    r = procs.run([*PIN, ",".join(map(str, cpus)), "--", sys.executable, "-c", show],
                  timeout_s=20, env=procs.child_env(), check=True)
    assert r.stdout.strip() == str(cpus)


def test_die_with_a_parent_that_is_already_gone_starts_nothing() -> None:
    """PID 1 is not the pin's parent (we are): as if the parent died before the prctl."""
    r = procs.run([*PIN, "--die-with", "1", "0", "--", "echo", "started"], timeout_s=20,
                  env=procs.child_env())
    assert r.returncode == 1 and r.stdout == ""
    assert "harness.pin: parent 1 exited before the child started" in r.stderr


def test_the_program_gets_sigterm_when_its_parent_dies() -> None:
    """A parent starts a pinned sleeper with ``--die-with`` itself, waits until it runs,
    and exits: the kernel ends the orphan."""
    parent = (
        "import os, subprocess, sys\n"
        f"pin = {PIN!r}\n"
        "child = subprocess.Popen([*pin, '--die-with', str(os.getpid()), '0', '--', sys.executable,"
        " '-c', 'import time; print(\"up\", flush=True); time.sleep(30)'],"
        " stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
        "assert child.stdout.readline() == 'up\\n'\n"
        "print(child.pid, flush=True)\n"
    )
    r = procs.run([sys.executable, "-c", parent], timeout_s=20, env=procs.child_env(),
                  check=True)
    pid = int(r.stdout)

    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    try:
        assert procs.poll_until(gone, 5.0, every_s=0.02), "the orphan outlived its parent"
    finally:
        if not gone():
            os.kill(pid, 9)


@pytest.mark.parametrize("args", [["0", "echo", "x"], ["0", "--"], ["--die-with"]])
def test_bad_arguments_are_refused_with_the_usage(args: list[str]) -> None:
    r = procs.run([*PIN, *args], timeout_s=20, env=procs.child_env())
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == ("usage: python -m harness.pin [--die-with PID] CPU[,CPU...] "
                                "-- ARGV...")
