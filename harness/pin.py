"""Exec wrapper: ``python -m harness.pin CPUS -- ARGV...`` pins itself, then execs ARGV.

Pinning before exec means the server's master and every worker it forks inherit
the CPU set from their first instruction; no race with a later ``sched_setaffinity``
and no ``preexec_fn`` in a threaded parent.
"""

from __future__ import annotations

import os
import sys


def main(args: list[str]) -> None:
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m harness.pin CPU[,CPU...] -- ARGV...")
    os.sched_setaffinity(0, {int(c) for c in args[0].split(",")})
    os.execvp(args[2], args[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
