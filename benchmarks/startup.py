"""How long ``bench`` takes to start: three commands timed as whole processes.

``bench --help``, ``bench list servers`` and a bad-input exit (``bench run --scenario
nope``, exit 2) each start the interpreter, import :mod:`harness.cli` and return; what
they cost is almost all import time (see ``python -X importtime -c "import harness.cli"``).
Prints the median, min and max wall time (s) over ``--runs`` runs of each, after one
unmeasured run that warms the file cache. The goal (issue #16): each under 0.4 s.

    .venv/bin/python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS: dict[str, tuple[list[str], int]] = {
    "bench --help": (["--help"], 0),
    "bench list servers": (["list", "servers"], 0),
    "bench run --scenario nope": (["run", "--scenario", "nope"], 2),
}


def bench_argv() -> list[str]:
    """The ``bench`` console script next to this interpreter, else ``python -m harness.cli``."""
    script = Path(sys.executable).with_name("bench")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "harness.cli"]


def time_command(args: list[str], expected: int, runs: int) -> list[float]:
    """Wall time (s) of ``runs`` runs of ``bench args``.

    Raises:
        RuntimeError: the command exited with another code than ``expected``.
    """
    argv = [*bench_argv(), *args]
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != expected:
            raise RuntimeError(f"{' '.join(argv)}: exit {done.returncode}, expected {expected}: "
                               f"{done.stderr.decode(errors='replace')[-300:]}")
        if i:  # the first run only warms the file cache
            times.append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="measured runs per command")
    args = parser.parse_args()
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'max s':>7}  ({args.runs} runs)")
    for name, (argv, expected) in COMMANDS.items():
        times = time_command(argv, expected, args.runs)
        print(f"{name:<28} {statistics.median(times):>9.3f} {min(times):>7.3f} "
              f"{max(times):>7.3f}")


if __name__ == "__main__":
    main()
