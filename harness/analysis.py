"""Per-trial figures from raw records and samples, and the validity verdict.

Everything here is a pure function of data (DataFrames and dicts), testable alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# Reading records is the results store's job; re-exported for callers of the old name.
from harness.results import read_records  # noqa: F401

PERCENTILES = {"latency_p50_ms": 50.0, "latency_p90_ms": 90.0, "latency_p95_ms": 95.0,
               "latency_p99_ms": 99.0, "latency_p999_ms": 99.9}


@dataclass(frozen=True, slots=True)
class Window:
    """The measurement window, in wall-clock unix seconds: [start, end)."""

    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def request_metrics(records: pd.DataFrame, window: Window,
                    name: str = "request") -> dict[str, float | int]:
    """Throughput, error rate and latency percentiles of the requests that *completed*
    inside ``window``.

    Returns ``requests`` (all completed), ``failures``, ``throughput_rps``
    (successful requests / window seconds: errors never count as throughput),
    ``error_rate`` (failures / requests), latency mean/percentiles/max in ms over
    every completed request, failed or not (a timeout's latency is real latency),
    ``latency_trend_ms_per_s`` (least-squares slope of latency against completion
    time: ~0 in a steady state, > 0 while a queue builds), and ``incomplete``
    (open loop: requests due before the window ended that were still in flight when
    the test stopped; their latency is unknown and not in the percentiles).
    Percentiles use linear interpolation between order statistics (numpy's default,
    Hyndman & Fan 1996 type 7); latencies are unrounded. Only rows called ``name``
    count (stream scenarios time several things per connection).
    """
    if "name" in records:
        incomplete = records[(records["name"] == "incomplete")
                             & (records["start_unix_s"] < window.end)]
        records = records[records["name"] == name]
    else:
        incomplete = records.iloc[0:0]
    end = records["start_unix_s"] + records["latency_ms"] / 1000.0
    inside = records[(end >= window.start) & (end < window.end)]
    n = len(inside)
    failures = int((inside["ok"] == 0).sum())
    out: dict[str, float | int] = {
        "requests": n,
        "failures": failures,
        "throughput_rps": (n - failures) / window.seconds,
        "error_rate": failures / n if n else math.nan,
        "incomplete": len(incomplete),
        "latency_trend_ms_per_s": math.nan,
    }
    lat = inside["latency_ms"].to_numpy(dtype=float)
    if n:
        out["latency_mean_ms"] = float(lat.mean())
        qs = np.percentile(lat, list(PERCENTILES.values()))
        out.update({k: float(v) for k, v in zip(PERCENTILES, qs, strict=True)})
        out["latency_max_ms"] = float(lat.max())
    else:
        out.update({k: math.nan for k in ("latency_mean_ms", *PERCENTILES, "latency_max_ms")})
    ends = end[inside.index].to_numpy(dtype=float)
    if n >= 3 and np.ptp(ends) > 0:
        out["latency_trend_ms_per_s"] = float(stats.linregress(ends - window.start, lat).slope)
    return out


def resource_metrics(samples: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """Server resource figures over [t0, t1] (run-clock seconds) from sampler rows.

    CPU in percent of one core (mean and peak of the 10 Hz readings); PSS mean and
    peak, RSS and USS peak, in MiB (PSS/USS from the ~1 Hz full-memory readings).
    """
    s = samples[(samples["t_s"] >= t0) & (samples["t_s"] <= t1)]
    def agg(col: str, fn: str) -> float:
        v = s[col].dropna()
        return float(getattr(v, fn)()) if len(v) else math.nan
    return {
        "cpu_percent_mean": agg("cpu_percent", "mean"),
        "cpu_percent_peak": agg("cpu_percent", "max"),
        "pss_mib_mean": agg("pss_mib", "mean"),
        "pss_mib_peak": agg("pss_mib", "max"),
        "rss_mib_peak": agg("rss_mib", "max"),
        "uss_mib_peak": agg("uss_mib", "max"),
        "server_processes": agg("processes", "max"),
        "server_cpus_busy_percent": agg("cpuset_busy_percent", "mean"),
    }


def littles_law(throughput_all_rps: float, mean_latency_ms: float, users: int) -> float:
    """Little's law (Little 1961), L = lambda W: users in the system implied by the
    measured throughput and mean latency, over the users locust actually ran.

    1.0 means every user always had a request in flight; below 1, time was spent
    between requests (client overhead); far from 1, something is measured wrong.
    """
    if not users or math.isnan(mean_latency_ms):
        return math.nan
    return throughput_all_rps * (mean_latency_ms / 1000.0) / users


def io_ceiling_rps(users: int, capacity: float, latency_ms: float) -> float:
    """Closed-loop throughput ceiling of a pure-wait workload: min(users, capacity) / latency.

    ``capacity`` is the requests the server can have in progress at once (workers x
    threads; ``inf`` for event loops). NaN when latency is 0 (no finite ceiling).
    """
    if latency_ms <= 0:
        return math.nan
    return min(users, capacity) / (latency_ms / 1000.0)


def generator_load(samples: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """The load generator's CPU over [t0, t1] (run-clock s), in percent of one core:
    mean and peak of its whole process tree, and mean of its busiest process."""
    s = samples[(samples["t_s"] >= t0) & (samples["t_s"] <= t1)]
    tree, top = s["cpu_percent"].dropna(), s["cpu_percent_top"].dropna()
    busy = s["cpuset_busy_percent"].dropna()
    return {
        "generator_cpu_percent": float(tree.mean()) if len(tree) else math.nan,
        "generator_cpu_percent_peak": float(tree.max()) if len(tree) else math.nan,
        "generator_cpu_percent_top": float(top.mean()) if len(top) else math.nan,
        "load_cpus_busy_percent": float(busy.mean()) if len(busy) else math.nan,
    }


def generator_saturation(gen: dict[str, float], *, load_cpus: int, limit_percent: float,
                         locust_warned: bool) -> str:
    """Why the load generator may have been the bottleneck, or "" if it was not.

    Saturated when its busiest process averaged >= ``limit_percent`` of one core
    (a locust process is single-threaded), when the whole tree averaged >=
    ``limit_percent`` of every load CPU together (several processes sharing too few
    cores), when the load CPUs were that busy whatever ran on them (locust starved by
    another process), or when locust itself warned of high CPU. The figures then
    describe the generator, not the server.
    """
    reasons = []
    top, tree = gen["generator_cpu_percent_top"], gen["generator_cpu_percent"]
    busy = gen.get("load_cpus_busy_percent", math.nan)
    if not math.isnan(top) and top >= limit_percent:
        reasons.append(f"busiest locust process at {top:.0f}% of a core")
    if not math.isnan(tree) and tree >= limit_percent * load_cpus:
        reasons.append(f"locust at {tree:.0f}% of its {load_cpus} load CPU(s)")
    elif not math.isnan(busy) and busy >= limit_percent:
        reasons.append(f"load CPUs {busy:.0f}% busy (locust itself {tree:.0f}%: "
                       "another process competed for them)")
    if locust_warned:
        reasons.append("locust warned of high CPU")
    if not reasons:
        return ""
    return f"generator-saturated: {'; '.join(reasons)} (limit {limit_percent:.0f}%)"


#: A closed-loop trial whose Little's-law ratio is off by more than this is flagged.
LITTLES_LAW_TOLERANCE = 0.10


def flags(trial: dict[str, Any]) -> str:
    """Warnings that do not invalidate a trial but deserve a look, joined by ``;``.

    ``littles-law-off``: closed loop, throughput x mean latency differs from the
    users running by more than 10% (a measurement problem, or a window too short
    for the queue to reach its steady state); ``below-ceiling``: io-heavy throughput
    under 90% of its Little's-law ceiling (the server, not the wait, limits it).
    """
    out = []
    ratio = trial.get("littles_law_ratio", math.nan)
    if not math.isnan(ratio) and abs(ratio - 1.0) > LITTLES_LAW_TOLERANCE:
        out.append("littles-law-off")
    efficiency = trial.get("efficiency", math.nan)
    if not math.isnan(efficiency) and efficiency < 0.9:
        out.append("below-ceiling")
    return ";".join(out)


def verdict(m: dict[str, Any], *, max_error_rate: float) -> tuple[str, str]:
    """(status, reason) from the request figures alone: ``failed`` when nothing
    completed in the window, ``invalid`` when the error rate passed the threshold."""
    if not m.get("requests"):
        return "failed", "no request completed in the measurement window"
    if m["error_rate"] > max_error_rate:
        return "invalid", f"error rate {m['error_rate']:.2%} > {max_error_rate:.2%}"
    return "ok", ""
