"""Exec wrapper: ``python -m harness.pin [--die-with PID] CPUS -- ARGV...`` pins itself,
then execs ARGV.

Pinning before exec means the server's master and every worker it forks inherit
the CPU set from their first instruction; no race with a later ``sched_setaffinity``
and no ``preexec_fn`` in a threaded parent.

``--die-with PID``: ask the kernel for SIGTERM when the parent dies
(``prctl(PR_SET_PDEATHSIG)``, see prctl(2)). The setting survives the exec (the
programs run are not set-uid) and is not inherited by the program's own children:
the leader gets the signal and stops its workers itself. The kernel sends it when the
*thread* that forked this process exits, so the harness asks for it from its main
thread only (``harness.procs.spawn``). PID is that parent: if it already died before
the ``prctl`` (the setting would then never fire), this exits at once instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent thread dies; exit now if ``parent`` is
    already gone (we were re-parented before asking)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        sys.exit(f"harness.pin: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if os.getppid() != parent:
        sys.exit(f"harness.pin: parent {parent} exited before the child started")


def main(args: list[str]) -> None:
    if len(args) >= 2 and args[0] == "--die-with":
        die_with_parent(int(args[1]))
        args = args[2:]
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m harness.pin [--die-with PID] CPU[,CPU...] -- ARGV...")
    os.sched_setaffinity(0, {int(c) for c in args[0].split(",")})
    os.execvp(args[2], args[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
