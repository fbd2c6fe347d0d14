"""What bench's own load process costs its generator: plain locust against bench's user,
side by side, on the same server and the same load core.

Starts ``granian-asgi`` (1 worker, CPU 0) once, then drives ``/io?latency_ms=0`` with 64
closed-loop users on ONE load core (CPU 1) with:

* ``plain``: locust's ``FastHttpUser``, one task ``GET``, ``wait_time = constant(0)``, no
  listeners (a locustfile written to a temp folder);
* ``bench``: ``harness/loadgen/locustfile.py`` ``BenchUser`` with the harness's own command
  line (``harness.load.locust_argv``) and spec: byte-exact check through
  ``catch_response``, one CSV line per request flushed every 0.2 s (``live``, as with
  the default steady-state warm-up), scheduling lag;
* any ``--extra NAME=LOCUSTFILE:USERCLASS`` (an experimental copy, given the same spec).

With ``--together`` the variants run at the same time, sharing the load core equally
(each then gets a share of it, so compare them with each other, not with a figure from
a run alone). Each runs ``--warmup`` s then ``--duration`` s; throughput is the completed requests
between the two (locust's own per-second ``--csv`` history, the same counter for every
variant). The variants alternate, ``--repeats`` times each, and the median and range
are printed: other processes on a shared machine move single figures by several %.
The overhead is ``1 - bench / plain`` (median req/s), and from CPU time per request
``1 - plain_cpu / bench_cpu``: the share of the load core bench spends beyond plain
locust, which other processes on the load CPU move less (they lower req/s; they still
inflate CPU per request through caches and switches); also paired by round.

    .venv/bin/python benchmarks/generator_overhead.py [--duration 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

from harness.apps.work import expected
from harness.load import LoadSpec, locust_argv
from harness.procs import child_env, free_port, poll_until, running, wait_ready
from harness.servers import SERVERS

PATH = "/io?latency_ms=0"
USERS = 64
SERVER_CPU, LOAD_CPU = 0, 1

PLAIN = textwrap.dedent(f"""\
    from locust import FastHttpUser, constant, task


    class PlainUser(FastHttpUser):
        wait_time = constant(0)

        @task
        def get(self):
            self.client.get({PATH!r})
    """)


def throughput(history: Path, warmup_s: float) -> float:
    """Completed req/s after the warm-up, from locust's ``*_stats_history.csv``
    (cumulative ``Total Request Count`` of the ``Aggregated`` row, once a second)."""
    rows = [(float(r["Timestamp"]), int(r["Total Request Count"]))
            for r in csv.DictReader(history.open()) if r["Name"] == "Aggregated"]
    rows = [r for r in rows if r[1] > 0]
    if len(rows) < 3:
        raise RuntimeError(f"too few stats rows in {history}: {rows}")
    t_first = rows[0][0]
    after = [r for r in rows if r[0] >= t_first + warmup_s]
    (t0, n0), (t1, n1) = after[0], after[-1]
    return (n1 - n0) / (t1 - t0)


def records_throughput(records_dir: Path, warmup_s: float) -> float:
    """Completed req/s after the warm-up, from bench's own per-request records (bench's
    load process drops locust's request statistics: harness/loadgen/locustfile.py)."""
    ends: list[float] = []
    for f in records_dir.glob("*.csv"):
        for line in f.read_text().splitlines():
            start, latency_ms, *_ = line.split(",")
            ends.append(float(start) + float(latency_ms) / 1000.0)
    if len(ends) < 3:
        raise RuntimeError(f"too few records in {records_dir}")
    ends.sort()
    after = [e for e in ends if e >= ends[0] + warmup_s]
    return (len(after) - 1) / (after[-1] - after[0])


def _has_records(records_dir: Path) -> bool:
    return any(f.stat().st_size > 0 for f in records_dir.glob("*.csv"))


def command(name: str, locustfile: Path, user_class: str, *, port: int, folder: Path,
            warmup_s: float, duration_s: float, run: int) -> tuple[list[str], Path, int]:
    """The locust command line of one run (and its ``--csv`` prefix and run time, s):
    the harness's own (``harness.load.locust_argv``) with this locustfile and user."""
    status, _, body = expected(PATH)
    spec = LoadSpec(users=USERS, warmup_s=warmup_s, duration_s=duration_s, method="GET",
                    path=PATH, expected_status=status, expected_body=body, name="io-heavy",
                    user_class=user_class)
    spec_path = folder / f"{name}-{run}.spec.json"
    spec_path.write_text(json.dumps({
        "name": spec.name, "method": spec.method, "path": spec.path,
        "expected_status": status, "expected_body": body.decode("latin-1"),
        "records_dir": str(folder / f"requests-{name}-{run}"), "start_spread_s": 0.0,
        # live: records flushed every 0.2 s, as with the default steady-state warm-up
        "options": {"processes": 1}, "live": True}))
    run_time = int(warmup_s + duration_s + 2)
    argv = locust_argv(spec, port=port, spec_path=spec_path, run_time_s=run_time)
    argv[argv.index("-f") + 1] = str(locustfile)
    prefix = folder / f"{name}-{run}"
    argv[-1:-1] = ["--csv", str(prefix), "--csv-full-history"]
    if name == "plain":
        i = argv.index("--bench-spec")
        del argv[i:i + 2]  # the plain locustfile defines no such option
    return argv, prefix, run_time


def _cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def drive(name: str, locustfile: Path, user_class: str, *, port: int, folder: Path,
          warmup_s: float, duration_s: float, run: int) -> tuple[float, float]:
    """One locust run of ``user_class`` pinned to the load CPU: its req/s, and the
    locust process's CPU time per request (us) over the measured part, which other
    processes sharing the load CPU do not move (they lower req/s, not CPU per request)."""
    argv, prefix, run_time = command(name, locustfile, user_class, port=port, folder=folder,
                                     warmup_s=warmup_s, duration_s=duration_s, run=run)
    log = folder / f"{name}-{run}.log"
    history = Path(f"{prefix}_stats_history.csv")
    with running(argv, cpus=[LOAD_CPU], log_path=log, env=child_env()) as proc:
        me = psutil.Process(proc.pid)
        # The first requests: the same origin throughput() takes.
        records = folder / f"requests-{name}-{run}"
        poll_until(lambda: (history.is_file() and _has_requests(history))
                   or _has_records(records), run_time)
        time.sleep(max(0.0, warmup_s - 0.5))
        c0, t0 = _cpu_s(me), time.monotonic()
        time.sleep(duration_s - 1.0)
        c1, t1 = _cpu_s(me), time.monotonic()
        code = proc.wait(timeout=run_time + 30)
    if code != 0:
        raise RuntimeError(f"{name}: locust exited {code}: {log.read_text()[-800:]}")
    rps = (throughput(history, warmup_s) if name == "plain"
           else records_throughput(folder / f"requests-{name}-{run}", warmup_s))
    return rps, (c1 - c0) / (t1 - t0) / rps * 1e6


def drive_together(variants: dict[str, tuple[Path, str]], *, port: int, folder: Path,
                   warmup_s: float, duration_s: float,
                   run: int) -> dict[str, tuple[float, float]]:
    """Every variant at once, all on the load CPU: the scheduler gives each an equal
    share of it, and whatever else runs on the machine hits them all alike, so their
    CPU per request (and, while they set the pace, their req/s) compare fairly."""
    runs = {name: command(name, path, cls, port=port, folder=folder, warmup_s=warmup_s,
                          duration_s=duration_s, run=run)
            for name, (path, cls) in variants.items()}
    with contextlib.ExitStack() as stack:
        procs = {name: stack.enter_context(running(argv, cpus=[LOAD_CPU],
                                                   log_path=folder / f"{name}-{run}.log",
                                                   env=child_env()))
                 for name, (argv, _, _) in runs.items()}
        histories = {name: Path(f"{prefix}_stats_history.csv")
                     for name, (_, prefix, _) in runs.items()}
        run_time = max(r for _, _, r in runs.values())
        poll_until(lambda: all((h.is_file() and _has_requests(h))
                               or _has_records(folder / f"requests-{n}-{run}")
                               for n, h in histories.items()), run_time)
        ps = {name: psutil.Process(p.pid) for name, p in procs.items()}
        time.sleep(max(0.0, warmup_s - 0.5))
        c0, t0 = {n: _cpu_s(p) for n, p in ps.items()}, time.monotonic()
        time.sleep(duration_s - 1.0)
        c1, t1 = {n: _cpu_s(p) for n, p in ps.items()}, time.monotonic()
        codes = {n: p.wait(timeout=run_time + 30) for n, p in procs.items()}
    out = {}
    for name, code in codes.items():
        if code != 0:
            log = folder / f"{name}-{run}.log"
            raise RuntimeError(f"{name}: locust exited {code}: {log.read_text()[-800:]}")
        rps = (throughput(histories[name], warmup_s) if name == "plain"
               else records_throughput(folder / f"requests-{name}-{run}", warmup_s))
        out[name] = (rps, (c1[name] - c0[name]) / (t1 - t0) / rps * 1e6)
    return out


def _has_requests(history: Path) -> bool:
    return any(r["Name"] == "Aggregated" and int(r["Total Request Count"] or 0) > 0
               for r in csv.DictReader(history.open()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="measured s (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="s before measuring (default 2)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--together", action="store_true",
                    help="run the variants at once on the load CPU (fairest on a busy machine)")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME=LOCUSTFILE:USERCLASS, another variant to compare")
    args = ap.parse_args()
    from harness.load import LOCUSTFILE

    with tempfile.TemporaryDirectory(prefix="bench-generator-overhead-") as tmp:
        folder = Path(tmp)
        plain = folder / "plain_locustfile.py"
        plain.write_text(PLAIN)
        variants = {"plain": (plain, "PlainUser"), "bench": (LOCUSTFILE, "BenchUser")}
        for extra in args.extra:
            name, _, target = extra.partition("=")
            path, _, cls = target.rpartition(":")
            variants[name] = (Path(path), cls)
        port = free_port()
        server_log = folder / "server.log"
        argv = SERVERS["granian-asgi"].argv(port=port, workers=1)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        with running(argv, cpus=[SERVER_CPU], log_path=server_log, env=child_env()) as server:
            wait_ready(server, port, server_log)
            for run in range(args.repeats):
                if args.together:
                    got = drive_together(variants, port=port, folder=folder,
                                         warmup_s=args.warmup, duration_s=args.duration,
                                         run=run)
                else:
                    got = {name: drive(name, path, cls, port=port, folder=folder,
                                       warmup_s=args.warmup, duration_s=args.duration,
                                       run=run)
                           for name, (path, cls) in variants.items()}
                for name, (rps, cpu_us) in got.items():
                    results[name].append((rps, cpu_us))
                    print(f"run {run + 1}: {name:>10} {rps:>9,.0f} req/s "
                          f"{cpu_us:>6.1f} us CPU/request", file=sys.stderr, flush=True)
    print(f"granian-asgi 1 worker (CPU {SERVER_CPU}), {USERS} users on CPU {LOAD_CPU}, "
          f"GET {PATH}, {args.duration:g} s after {args.warmup:g} s, "
          f"{args.repeats} {'simultaneous' if args.together else 'alternating'} runs each")
    base = statistics.median(r for r, _ in results["plain"])
    base_cpu = statistics.median(c for _, c in results["plain"])
    for name, values in results.items():
        rps = [r for r, _ in values]
        cpu = [c for _, c in values]
        med, med_cpu = statistics.median(rps), statistics.median(cpu)
        print(f"{name:>10}: {med:>9,.0f} req/s median ({min(rps):,.0f}-{max(rps):,.0f}), "
              f"overhead 1 - {name}/plain {1 - med / base:+.1%}; "
              f"{med_cpu:.1f} us CPU/request ({min(cpu):.1f}-{max(cpu):.1f}), "
              f"1 - plain/{name} {1 - base_cpu / med_cpu:+.1%}")
    # Runs of one round are seconds apart: their ratio cancels slow drifts in what else
    # runs on the machine better than the ratio of medians does.
    for name, values in results.items():
        if name == "plain":
            continue
        paired = [1 - p[1] / v[1] for p, v in zip(results["plain"], values, strict=True)]
        print(f"{name:>10}: extra CPU per request vs plain, paired by round: median "
              f"{statistics.median(paired):+.1%} ({min(paired):+.1%} .. {max(paired):+.1%})")


if __name__ == "__main__":
    main()
