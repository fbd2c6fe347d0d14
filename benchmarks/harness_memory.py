"""What analysing one long trial costs the harness: peak RSS and wall time of today's
per-request DataFrame path against the streamed HDR-histogram path.

Writes a synthetic record stream in the real format (harness/loadgen/locustfile.py:
``start_unix_s,latency_ms,ok,status,bytes,name``, 6 and 4 decimals) for a trial of
``--seconds`` at ``--rate`` req/s (default 10 minutes at 5,000 req/s: 3,000,000 rows)
across ``--files`` ``<pid>.csv`` files, plus a 2 s warm-up before the window, then, in
a fresh subprocess per method and repeat (so one method's heap never inflates the
other's figure), measures:

* ``dataframe``: ``read_records`` + ``request_metrics`` + ``steady.evaluate`` of the
  window, as ``harness.runner`` does after a trial today;
* ``streamed``: ``scan_records`` + ``.metrics()`` + ``.steadiness()`` + ``to_json()``.

Peak RSS is the child's ``ru_maxrss`` (its whole life, imports included); ``import``
is its RSS after importing and before reading. Wall time is noisy on a shared machine,
so each method runs ``--repeats`` times and the median and range are printed.

    .venv/bin/python benchmarks/harness_memory.py [--rate 5000] [--seconds 600]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

T0 = 1_700_000_000.0
WARMUP_S = 2.0
BLOCK_ROWS = 250_000


def write_records(folder: Path, *, rate: float, seconds: float, files: int,
                  seed: int = 1) -> tuple[int, int]:
    """Write the synthetic stream; return (rows, bytes). Latency lognormal around
    10 ms with a slow tail, 0.1% failures (status 500); rows in completion order per
    file, as locust appends them."""
    rng = np.random.default_rng(seed)
    total = int(rate * (seconds + WARMUP_S))
    per_file = math.ceil(total / files)
    rows = 0
    for k in range(files):
        n = min(per_file, total - rows)
        with open(folder / f"{1000 + k}.csv", "w", encoding="ascii") as f:
            for lo in range(0, n, BLOCK_ROWS):
                m = min(BLOCK_ROWS, n - lo)
                # This file's share of the timeline, in order.
                start = T0 + (np.arange(lo, lo + m) * files + k) / rate
                lat = rng.lognormal(np.log(10.0), 0.5, m)
                ok = (rng.random(m) >= 0.001).astype(int)
                status = np.where(ok == 1, 200, 500)
                size = np.where(ok == 1, 17, 0)
                np.savetxt(f, np.column_stack([start, lat, ok, status, size]),
                           fmt="%.6f,%.4f,%d,%d,%d,request")
        rows += n
    return rows, sum(p.stat().st_size for p in folder.glob("*.csv"))


def measure(method: str, folder: Path, start: float, end: float, users: int) -> dict[str, float]:
    """In this (fresh) process: run one method; return its figures."""
    import psutil

    from harness import latency, steady
    from harness.analysis import Window, read_records, request_metrics

    window = Window(start, end)
    import_mib = psutil.Process().memory_info().rss / 2**20
    t = time.perf_counter()
    if method == "dataframe":
        records = read_records(folder)
        m = request_metrics(records, window)
        rows = records[records["name"] == "request"]
        ends = (rows["start_unix_s"] + rows["latency_ms"] / 1000.0).to_numpy()
        state = steady.evaluate(ends, rows["latency_ms"].to_numpy(), span_start=start,
                                span_end=end, started_at=-math.inf, users=users)
        stored = 0
    else:
        stats = latency.scan_records(folder, window)
        m = stats.metrics()
        state = stats.steadiness(users)
        stored = len(json.dumps(stats.to_json()))
    wall = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"peak_rss_mib": peak_mib, "import_rss_mib": import_mib, "wall_s": wall,
            "requests": m["requests"], "p50_ms": m["latency_p50_ms"],
            "p99_ms": m["latency_p99_ms"], "p999_ms": m["latency_p999_ms"],
            "trend_ms_per_s": m["latency_trend_ms_per_s"], "drift_ms": state.drift_ms,
            "stored_bytes": stored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=5000.0, help="req/s (default 5000)")
    ap.add_argument("--seconds", type=float, default=600.0, help="window s (default 600)")
    ap.add_argument("--files", type=int, default=2, help="<pid>.csv files (default 2)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--measure", choices=["dataframe", "streamed"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    start, end = T0 + WARMUP_S, T0 + WARMUP_S + args.seconds
    users = 50  # Little's law inputs only; the figures compared do not depend on it
    if args.measure:
        print(json.dumps(measure(args.measure, args.dir, start, end, users)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-harness-memory-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        rows, size = write_records(folder, rate=args.rate, seconds=args.seconds,
                                   files=args.files)
        print(f"{rows:,} records ({size / 2**20:.0f} MiB in {args.files} files) written "
              f"in {time.perf_counter() - t:.1f} s; window {args.seconds:g} s at "
              f"{args.rate:g} req/s, {args.repeats} fresh processes per method")
        results: dict[str, list[dict[str, float]]] = {"dataframe": [], "streamed": []}
        for _ in range(args.repeats):
            for method, runs in results.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--measure", method, "--dir", str(folder),
                     "--seconds", str(args.seconds)],
                    capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout))
    print(f"{'method':>10} {'peak RSS MiB':>13} {'after import':>13} {'wall s (median, range)':>24}"
          f" {'p50 ms':>9} {'p99 ms':>9} {'p99.9 ms':>9} {'stored KiB':>10}")
    for method, runs in results.items():
        peak = statistics.median(r["peak_rss_mib"] for r in runs)
        walls = [r["wall_s"] for r in runs]
        r = runs[0]
        print(f"{method:>10} {peak:>13.0f} {r['import_rss_mib']:>13.0f} "
              f"{statistics.median(walls):>10.2f} ({min(walls):.2f}-{max(walls):.2f})"
              f"{'':>5} {r['p50_ms']:>9.4f} {r['p99_ms']:>9.4f} {r['p999_ms']:>9.4f} "
              f"{r['stored_bytes'] / 1024:>10.0f}")
    old, new = results["dataframe"][0], results["streamed"][0]
    assert old["requests"] == new["requests"], (old, new)
    worst = max(abs(new[k] / old[k] - 1) for k in ("p50_ms", "p99_ms", "p999_ms"))
    print(f"requests in window: {old['requests']:,} (both); largest percentile difference "
          f"{worst:.2e} relative; trend {old['trend_ms_per_s']:.3e} vs "
          f"{new['trend_ms_per_s']:.3e} ms/s")


if __name__ == "__main__":
    main()
