"""Load agents: merged throughput with 1 and 2 agents against one local locust, and what
shipping the records costs per trial (docs/distributed.md).

Runs the real ``bench run`` on a CPU-light endpoint (``io-heavy`` with
``latency_ms=0``: no wait, the cheapest request the apps serve; uvicorn, 1 worker, CPU 0)
at ``--users`` closed-loop users, in three modes, alternated ``--repeats`` times:

* ``local``: one locust process on the load CPU (``--load-cpus``), as without agents;
* ``1 agent`` / ``2 agents``: ``bench run --load-agents N`` with N ``bench agent``
  processes started beside it, each pinned to ``--agent-cpus`` (the same CPU by
  default: a 2-core machine has one for load), the local locust their master only.

Per mode: merged throughput (req/s, trials.csv), the agents' CPU per request (ms, from
agents.csv) against the local locust's (samples.csv), and the per-trial cost of shipping
the records over locust's message channel: bytes and batches per trial, the master's
CPU while it receives them (% of a core, samples.csv), and the time from the level's
end to the master having every agent's last records and meta (``agents_end_s``).

    .venv/bin/python benchmarks/distributed.py [--duration 10] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from harness import procs

BENCH = [sys.executable, "-m", "harness.cli"]


def wait_for_quiet_cpus(limit_percent: float = 20.0, quiet_s: int = 3,
                        timeout_s: float = 120.0) -> None:
    """Wait (bounded) until every CPU was below ``limit_percent`` busy for ``quiet_s`` s:
    on a shared machine another process on the load CPU moves req/s by tens of %."""
    import time

    import psutil

    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < quiet_s and time.monotonic() < deadline:
        quiet = quiet + 1 if max(psutil.cpu_percent(interval=1.0, percpu=True)) < limit_percent \
            else 0


def one_run(mode: int, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """One ``bench run`` with ``mode`` agents (0: local locust); its figures."""
    wait_for_quiet_cpus()
    out = base / f"m{mode}-{len(list(base.iterdir()))}"
    port = procs.free_port()
    agents = [procs.spawn([*BENCH, "agent", "--master", f"127.0.0.1:{port}", "--cpus",
                           args.agent_cpus, "--timeout", "120"],
                          cpus=[int(c) for c in args.agent_cpus.split(",")],
                          log_path=out / f"agent{i}.log") for i in range(mode)]
    try:
        argv = [*BENCH, "run", "--scenario", "io-heavy", "--servers", args.server,
                "--param", "latency_ms=0", "--users", str(args.users), "--server-cpus",
                args.server_cpus, "--load-cpus", args.load_cpus, "--duration",
                str(args.duration), "--results-dir", str(out / "results"),
                "--report", str(out / "r.html"), "--wait-cpus", "900"]
        if mode:
            argv += ["--load-agents", str(mode), "--master-bind", f"127.0.0.1:{port}"]
        done = procs.run(argv, timeout_s=600, env=procs.child_env())
        if done.returncode:
            raise RuntimeError(f"bench run exited {done.returncode}: {done.stderr[-2000:]}")
    finally:
        for a in agents:
            procs.stop_group(a, grace_s=5)
    (run_dir,) = (out / "results").iterdir()
    (trial,) = pd.read_csv(run_dir / "trials.csv").to_dict("records")
    window = trial["t_end_s"] - trial["t_start_s"]
    samples = pd.read_csv(run_dir / "samples.csv")
    gen = samples[(samples["source"] == "generator") & (samples["t_s"] >= trial["t_start_s"])
                  & (samples["t_s"] <= trial["t_end_s"])]
    local_cpu = float(gen["cpu_percent"].mean())  # the local locust (or the master)
    row = {"mode": mode, "status": trial["status"], "reason": str(trial["reason"])[:60],
           "rps": trial["throughput_rps"],
           "p50_ms": trial["latency_p50_ms"], "p99_ms": trial["latency_p99_ms"]}
    if not mode:
        row["gen_cpu_ms_per_req"] = local_cpu / 100 * window * 1000 / trial["requests"]
        return row
    per_agent = pd.read_csv(run_dir / "agents.csv")
    metas = [json.loads(f.read_text()) for f in
             (run_dir / "requests" / trial["trial_id"]).glob("*.meta.json")]
    master = next(m for m in metas if m.get("role") == "master")
    row.update(
        gen_cpu_ms_per_req=float(per_agent["cpu_percent"].sum()) / 100 * window * 1000
        / trial["requests"],
        agent_rps=" / ".join(f"{v:.0f}" for v in per_agent["throughput_rps"]),
        shipped_kib=float(per_agent["shipped_bytes"].sum()) / 1024,
        batches=int(per_agent["shipped_batches"].sum()),
        bytes_per_req=float(per_agent["shipped_bytes"].sum()) / max(1, trial["requests"]),
        master_cpu_percent=local_cpu, end_s=float(master.get("agents_end_s", float("nan"))),
        clock_uncertainty_ms=float(per_agent["clock_uncertainty_ms"].max()))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--server", default="uvicorn")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--agent-cpus", default="1")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        for r in range(args.repeats):
            for mode in (0, 1, 2):
                row = one_run(mode, args, Path(tmp))
                print(f"round {r + 1} {row}", flush=True)
                rows.append(row)
    frame = pd.DataFrame(rows)
    print("\nmedian per mode (0 = local locust, N = N agents):")
    numeric = frame.drop(columns=["status", "reason", "agent_rps"], errors="ignore")
    print(numeric.groupby("mode").median().round(3).to_string())
    local = frame[frame["mode"] == 0]["rps"].median()
    for mode in (1, 2):
        print(f"{mode} agent(s) / local: {frame[frame['mode'] == mode]['rps'].median() / local:.3f}")


if __name__ == "__main__":
    main()
