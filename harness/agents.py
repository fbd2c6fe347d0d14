"""Load agents, the harness's side: per-agent figures of a trial and what invalidates it.

With ``bench run --load-agents N`` the local locust is the master of N agents (``bench
agent``, one locust worker process each, on other hosts), which ship their request
records and their meta back over locust's message channel (harness/loadgen/agents.py).
The master writes them into the trial's records folder as ``agent-<index>.csv`` and
``agent-<index>.meta.json``, so the trial's latency is the union of every agent's
records (exact merging: the percentiles of the union, never an average of
percentiles), and each agent's own figures come from its own file:
:func:`agent_rows`, one row per agent and trial in ``agents.csv``.

A trial is invalid, naming the agent, when an agent's generator was saturated (its own
CPU time over the window, or locust's CPU warning), when an agent was lost during the
level, or when fewer agents than asked took part (:func:`problems`). SSE's event lag
compares the server's clock with an agent's: such a trial is invalid when an agent's
clock offset is known less precisely than :data:`CLOCK_BOUND_MS` (:func:`clock_problem`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: SSE event lag is trusted only when every agent's clock offset to the harness is known
#: to within this (ms, half the best ping's round trip): 1 ms is 1% of a 100 ms lag,
#: and a loopback or LAN ping's half round trip is well below it.
CLOCK_BOUND_MS = 1.0

#: agents.csv: one row per (trial, agent).
AGENT_COLUMNS = (
    "trial_id", "agent", "address", "host", "pid", "cpus", "clock_offset_ms",
    "clock_uncertainty_ms", "requests", "failures", "throughput_rps", "error_rate",
    "latency_mean_ms", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
    "latency_max_ms", "cpu_percent", "cpu_warning", "shipped_bytes", "shipped_batches",
    "histogram",
)


def cpu_percent(samples: list[list[float]], start: float, end: float) -> float:
    """An agent's CPU over [start, end] (unix s, harness clock) in percent of one core,
    from its ``[time, process CPU s]`` samples (every 0.25 s): the CPU time between the
    first and the last sample inside the window over their distance. NaN with fewer than
    two samples inside."""
    inside = [(t, c) for t, c in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return math.nan
    return 100.0 * (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def agent_rows(records_dir: Path, window: Any, *, trial_id: str,
               name: str = "request") -> list[dict[str, Any]]:
    """One row per agent that sent its meta for this trial (AGENT_COLUMNS): its
    throughput (req/s), latency (ms, from its own records' HDR histogram: see
    harness.latency), CPU (% of a core) over ``window`` (unix s), its clock, and its
    histogram (``latency.encode``), so adding them gives the trial's."""
    from harness import latency

    rows = []
    for f in sorted(records_dir.glob("agent-*.meta.json")):
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        info = meta.get("agent", {})
        index = info.get("index")
        stats = latency.scan_records(records_dir, window, name=name,
                                     pattern=f"agent-{index}.csv")
        m = stats.metrics()
        rows.append({
            "trial_id": trial_id, "agent": index, "address": info.get("address", ""),
            "host": info.get("host", ""), "pid": info.get("pid"),
            "cpus": " ".join(map(str, info.get("cpus", []))),
            "clock_offset_ms": info.get("offset_ms", math.nan),
            "clock_uncertainty_ms": info.get("uncertainty_ms", math.nan),
            **{k: m[k] for k in AGENT_COLUMNS if k in m},
            "cpu_percent": cpu_percent(meta.get("cpu_samples", []), window.start, window.end),
            "cpu_warning": bool(meta.get("cpu_warning")),
            "shipped_bytes": meta.get("shipped_bytes", 0),
            "shipped_batches": meta.get("shipped_batches", 0),
            "histogram": latency.encode(stats.histogram),
        })
    return rows


def generator_figures(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The trial's generator columns from its agents: total and busiest agent's CPU (%
    of a core). The load CPUs' busy share is not known on other hosts: NaN."""
    cpu = [r["cpu_percent"] for r in rows if not math.isnan(r["cpu_percent"])]
    return {"generator_cpu_percent": sum(cpu) if cpu else math.nan,
            "generator_cpu_percent_peak": math.nan,
            "generator_cpu_percent_top": max(cpu) if cpu else math.nan,
            "load_cpus_busy_percent": math.nan}


def save(run_dir: Path, rows: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """Add a trial's ``new`` agent rows to ``rows`` and rewrite ``agents.csv``."""
    if not new:
        return
    import pandas as pd

    from harness.results import atomic_write_csv

    rows.extend(new)
    atomic_write_csv(run_dir / "agents.csv", pd.DataFrame(rows, columns=list(AGENT_COLUMNS)))


def problems(rows: list[dict[str, Any]], meta: dict[str, Any], master: dict[str, float], *,
             planned: int, limit_percent: float, protocol: str = "http") -> str:
    """Why the agents make this trial invalid, ``"; "``-joined ("" when they do not):
    an agent saturated (CPU >= ``limit_percent`` of its core over the window, or
    locust's CPU warning), the master saturated (``master``: its
    ``harness.analysis.generator_load`` figures), an agent lost during the level, fewer
    than ``planned`` agents taking part, and for SSE :func:`clock_problem`."""
    out = []
    top = master.get("generator_cpu_percent_top", math.nan)
    if not math.isnan(top) and top >= limit_percent:
        out.append(f"generator-saturated: locust master at {top:.0f}% of a core receiving "
                   f"the agents' records (limit {limit_percent:.0f}%)")
    for r in rows:
        why = []
        if not math.isnan(r["cpu_percent"]) and r["cpu_percent"] >= limit_percent:
            why.append(f"{r['cpu_percent']:.0f}% of a core")
        if r["cpu_warning"]:
            why.append("locust warned of high CPU")
        if why:
            out.append(f"generator-saturated: agent {r['agent']} ({r['address']} pid "
                       f"{r['pid']}): {', '.join(why)} (limit {limit_percent:.0f}%)")
    out.extend(f"agent lost: {lost}" for lost in meta.get("agents_lost", []))
    took_part = len(meta.get("agents", [])) - len(meta.get("agents_lost", []))
    if took_part < planned and not meta.get("agents_lost"):
        out.append(f"only {took_part} of {planned} load agents took part")
    if protocol == "sse" and clock_problem(rows):
        out.append(clock_problem(rows))
    return "; ".join(out)


def clock_problem(rows: list[dict[str, Any]], bound_ms: float = CLOCK_BOUND_MS) -> str:
    """Why figures comparing the server's clock with an agent's (SSE event lag) cannot be
    trusted ("" when every agent's offset is known within ``bound_ms``)."""
    loose = [r for r in rows if not r["clock_uncertainty_ms"] <= bound_ms]
    if not loose:
        return ""
    return ("clock: SSE event lag compares the server's clock with the agents'; "
            + ", ".join(f"agent {r['agent']} offset {r['clock_offset_ms']:.3f} ms "
                        f"+- {r['clock_uncertainty_ms']:.3f} ms" for r in loose)
            + f" (bound {bound_ms:g} ms)")


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (an IPv4 address or a host name; port 1..65535).

    Raises:
        UserError: anything else, in one line naming ``option``.
    """
    from harness.errors import UserError

    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 \
            or any(c.isspace() or c in "/[]" for c in host):
        raise UserError(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5557")
    return host, int(port)


def check_run_options(agents: int, processes: int, master_bind: str | None,
                      timeout_s: float) -> str:
    """Check ``bench run``'s agent options; the master's bind address ("" = default).

    Raises:
        UserError: a negative count, agents with --load-processes > 1, a bad address or
            timeout, --master-bind or --agent-timeout without --load-agents.
    """
    from harness.errors import UserError

    if agents < 0:
        raise UserError(f"--load-agents {agents}: must be >= 0")
    if not agents and master_bind is not None:
        raise UserError("--master-bind applies to --load-agents only")
    if agents and processes > 1:
        raise UserError("--load-agents and --load-processes exclude each other: the load "
                        "runs on the agents (give each `bench agent` --processes)")
    if not (math.isfinite(timeout_s) and 0 < timeout_s <= 3600):
        raise UserError(f"--agent-timeout {timeout_s}: must be > 0 and <= 3600 s")
    if master_bind is None:
        return ""
    host, port = parse_address(master_bind, "--master-bind")
    return f"{host}:{port}"
