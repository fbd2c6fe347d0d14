"""What the harness's own measuring costs: CPU time per sampler reading of a real tree.

Starts gunicorn-sync with N workers on CPU 0, reads its tree many times the way the
sampler does (CPU+RSS every sample, PSS/USS/connections every 10th), and prints the
mean cost per reading and the CPU share a 10 Hz sampler takes on the harness's core.

    .venv/bin/python benchmarks/sampler_cost.py [--workers 4] [--readings 500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from harness.procs import free_port, running, wait_ready
from harness.sampler import read_tree
from harness.servers import SERVERS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--readings", type=int, default=500)
    args = ap.parse_args()
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "server.log"
    argv = SERVERS["gunicorn-sync"].argv(port=port, workers=args.workers)
    with running(argv, cpus=[0], log_path=log) as proc:
        wait_ready(proc, port, log)
        root = psutil.Process(proc.pid)
        while len(root.children()) < args.workers:
            time.sleep(0.05)
        me = psutil.Process()
        for label, full, conns in (("cpu+rss", False, False), ("+pss+uss", True, False),
                                   ("+pss+uss+connections", True, True)):
            t0, c0 = time.perf_counter(), me.cpu_times()
            for i in range(args.readings):
                read_tree(root, full_memory=full, t_s=float(i), last=None,
                          count_connections=conns)
            c1 = me.cpu_times()
            cpu_ms = ((c1.user + c1.system) - (c0.user + c0.system)) / args.readings * 1000
            wall_ms = (time.perf_counter() - t0) / args.readings * 1000
            print(f"{label:>22}: {cpu_ms:.3f} ms CPU, {wall_ms:.3f} ms wall per reading "
                  f"of {args.workers + 1} processes")
    print("A 10 Hz sampler does 9 light + 1 full reading per second: "
          "its CPU share is (9 x light + 1 x full) / 1000 ms.")


if __name__ == "__main__":
    main()
