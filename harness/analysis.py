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


def engine_metrics(rows: pd.DataFrame, t0: float, t1: float) -> dict[str, float]:
    """The container engine's figures over [t0, t1] (run-clock seconds) from its stats rows
    (``samples.csv`` rows with ``source="engine"``: harness.backends.docker_stats.engine_row).

    ``engine_cpu_percent_mean``: mean of the cgroup's CPU percent of one core (each reading
    covers the ~1 s since the one before); ``engine_mib_mean`` / ``engine_mib_peak``: cgroup
    memory usage less inactive page cache (what ``docker stats`` shows), MiB. NaN without
    readings in the window.
    """
    s = rows[(rows["t_s"] >= t0) & (rows["t_s"] <= t1)]
    cpu, mem = s["cpu_percent"].dropna(), s["rss_mib"].dropna()
    return {
        "engine_cpu_percent_mean": float(cpu.mean()) if len(cpu) else math.nan,
        "engine_mib_mean": float(mem.mean()) if len(mem) else math.nan,
        "engine_mib_peak": float(mem.max()) if len(mem) else math.nan,
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


def _in_window(slices: dict[str, Any], window: Window) -> list[tuple[float, Any]]:
    """(weight, values) of per-second slices (keyed by the unix second, as a string)
    that overlap the window; weight is the overlapped fraction of the second."""
    out = []
    for sec, values in slices.items():
        t = int(sec)
        overlap = min(t + 1.0, window.end) - max(float(t), window.start)
        if overlap > 0:
            out.append((overlap, values))
    return out


def generator_lag(slices: dict[str, Any], window: Window, *, users: int) -> dict[str, float]:
    """The closed-loop generator's scheduling lag over the window.

    ``slices`` maps a unix second to ``[requests sent, lag sum ms, lag max ms]``
    (harness/loadgen/locustfile.py: the time from a user's previous response being handled to
    its next request being sent; with no think time, pure generator overhead). Seconds
    that overlap the window count in proportion to the overlap. Returns
    ``generator_lag_ms_mean`` (per request), ``generator_lag_ms_max``, and
    ``generator_lag_share``: lag summed over users and time, as a fraction of the
    users' time (0: every user always had a request in flight as far as the generator
    could tell).
    """
    inside = _in_window(slices, window)
    n = sum(w * v[0] for w, v in inside)
    total = sum(w * v[1] for w, v in inside)
    seconds = sum(w for w, _ in inside)
    if not inside or not n or not users:
        return {"generator_lag_ms_mean": math.nan, "generator_lag_ms_max": math.nan,
                "generator_lag_share": math.nan}
    return {"generator_lag_ms_mean": total / n,
            "generator_lag_ms_max": max(v[2] for _, v in inside),
            "generator_lag_share": total / 1000.0 / (users * seconds)}


def open_loop_sends(slices: dict[str, Any], window: Window) -> dict[str, float]:
    """Open loop: requests due, sent late and capped in the window (seconds that overlap
    it count in proportion to the overlap).

    ``slices`` maps the unix second a request was due to ``[due, late, capped,
    unsent]`` (harness/loadgen/locustfile.py): *late* is sent more than one arrival interval
    after it was due while a connection was free (the generator fell behind); *capped*
    is due while every allowed connection was busy (here it waits, timed from due);
    *unsent* was due before the test stopped and never sent (k6's "dropped
    iterations": the generator could not even start it).
    """
    inside = _in_window(slices, window)
    if not inside:
        return {"sends_due": math.nan, "sends_late": math.nan, "sends_capped": math.nan,
                "sends_unsent": math.nan}
    def total(i: int) -> float:
        return float(sum(w * v[i] for w, v in inside if len(v) > i))
    return {"sends_due": total(0), "sends_late": total(1), "sends_capped": total(2),
            "sends_unsent": total(3)}


def cost_metrics(trial: dict[str, Any], window_s: float) -> dict[str, float]:
    """Cost per request from the trial's own figures.

    ``cpu_ms_per_request``: server process-tree CPU time over the window divided by
    the successful requests in it, i.e. ``cpu_percent_mean / 100 x 1000 ms /
    throughput_rps`` (x window_s cancels); at one fully busy core it is
    ``1000 / throughput``. ``pss_kib_per_inflight``: mean PSS over the requests in
    flight, the latter from Little's law (all completed requests per s x mean latency).
    NaN where an input is missing or zero.
    """
    rps = float(trial.get("throughput_rps", math.nan))
    cpu = float(trial.get("cpu_percent_mean", math.nan))
    cpu_ms = cpu * 10.0 / rps if rps > 0 and not math.isnan(cpu) else math.nan
    all_rps = float(trial.get("requests", 0)) / window_s if window_s > 0 else math.nan
    inflight = all_rps * float(trial.get("latency_mean_ms", math.nan)) / 1000.0
    pss = float(trial.get("pss_mib_mean", math.nan))
    per = pss * 1024.0 / inflight if inflight > 0 and not math.isnan(pss) else math.nan
    return {"cpu_ms_per_request": cpu_ms, "pss_kib_per_inflight": per}


#: Closed loop: users outside a request for more than this share of their time because
#: the generator had not sent the next one yet, while the server had room for them:
#: the generator set the pace.
MAX_LAG_SHARE = 0.03
#: A busiest-process CPU peak (10 Hz readings) at or above this, % of one core, ...
GENERATOR_PEAK_PERCENT = 95.0
#: ... together with a lag share above this, is generator-limited too (as is Little's
#: law short by more than its tolerance with a lag share above this).
PEAK_LAG_SHARE = 0.01
#: The server "had room" below this share of its CPU set (and with no more users than
#: requests it can hold at once).
SPARE_CPU_SHARE = 0.8
#: Open loop: more than this fraction of due requests sent late: generator-behind.
MAX_LATE_SHARE = 0.01


def generator_limited(trial: dict[str, Any], *, load_processes: int, load_cpus: int,
                      server_cpus: int, server_concurrency: float = math.inf) -> str:
    """Evidence that the load generator, not the server, set a closed-loop trial's pace.

    A user's scheduling lag (``generator_lag_share``: its time between a response and
    its next request, as a share of its time) costs throughput only while the server
    has room for that request: no queue for a worker (``users`` <= the requests the
    server can hold at once, ``server_concurrency``: workers x threads, ``inf`` for
    event loops) and spare CPU (below :data:`SPARE_CPU_SHARE` of its ``server_cpus``).
    Given room, any of: a lag share above :data:`MAX_LAG_SHARE`; the busiest locust
    process peaking at >= :data:`GENERATOR_PEAK_PERCENT` of a core with a lag share
    above :data:`PEAK_LAG_SHARE`; Little's law short of the users offered by more than
    the steady-state tolerance with a lag share above :data:`PEAK_LAG_SHARE`.

    Thresholds, measured here (2 cores, quiet): every level of the default io-heavy run
    keeps its lag share at or under 1.2% (the most: hypercorn at 100 users, whose
    responses arrive in batches that the client then works through, with locust at 22%
    of a core); uvicorn at 512 users / 100 ms, where one locust process reached 4,130 to
    4,369 req/s against wrk's 4,950 on the same server, had 4.9% to 6.7% (the rest of
    that shortfall is latency the busy generator adds to every response, which the lag
    cannot see). 3% sits between the two with a factor of 1.6 either side.
    Returns ``"generator-limited: ..."`` with the figures and what would fix it, or "".
    """
    if trial.get("load_mode") != "closed-loop":
        return ""
    share = float(trial.get("generator_lag_share", math.nan))
    peak = float(trial.get("generator_cpu_percent_peak", math.nan))
    ratio = float(trial.get("littles_law_ratio", math.nan))
    server = float(trial.get("cpu_percent_mean", math.nan))
    users = float(trial.get("users", math.nan))
    room = (not math.isnan(server) and server < SPARE_CPU_SHARE * 100.0 * server_cpus
            and not users > server_concurrency)
    if not room or not share > PEAK_LAG_SHARE:
        return ""
    evidence = []
    if share > MAX_LAG_SHARE:
        evidence.append(f"users waited on the generator {share:.1%} of their time "
                        f"(mean scheduling lag {trial.get('generator_lag_ms_mean', 0):.2f} ms)")
    elif peak >= GENERATOR_PEAK_PERCENT:
        evidence.append(f"locust peaked at {peak:.0f}% of a core with scheduling lag "
                        f"{share:.1%} of the users' time")
    from harness.steady import LITTLES_LAW_TOLERANCE
    if ratio < 1.0 - LITTLES_LAW_TOLERANCE:
        evidence.append(f"Little's law ratio {ratio:.2f} with the server at {server:.0f}% "
                        f"of {server_cpus} CPU(s)")
    if not evidence:
        return ""
    evidence.append(f"server at {server:.0f}% of {server_cpus} CPU(s)")
    fix = ("more load processes on spare cores (--load-processes, --load-cpus) or fewer "
           "users per process" if load_processes < load_cpus or load_cpus > 1
           else "a machine with a spare core for more load processes (--load-processes, "
           "--load-cpus), or fewer users per process")
    return f"generator-limited: {'; '.join(evidence)}; fix: {fix}"


def generator_behind(trial: dict[str, Any]) -> str:
    """Open loop: ``"generator-behind: ..."`` when more than :data:`MAX_LATE_SHARE` of
    the requests due in the window were sent late or never sent (the generator could
    not keep the schedule), else ""."""
    due = float(trial.get("sends_due", math.nan))
    late = float(trial.get("sends_late", math.nan))
    unsent = float(trial.get("sends_unsent", 0.0))
    unsent = 0.0 if math.isnan(unsent) else unsent
    if not due > 0 or math.isnan(late) or (late + unsent) / due <= MAX_LATE_SHARE:
        return ""
    return (f"generator-behind: of {due:.0f} requests due in the window, {late:.0f} were "
            f"sent more than one interval late and {unsent:.0f} never sent "
            f"({(late + unsent) / due:.1%}); fix: a lower --arrival-rate per load process "
            "(--load-processes, --load-cpus)")


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
