"""The same scenario under several backends, side by side (:func:`backend_comparison`),
and the container engine's view of memory beside PSS (:func:`engine_memory`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from harness import stats
from harness.report.fmt import _float
from harness.report.model import _STATUS_ORDER, Analysis, _trials, as_analysis, once
from harness.results import RunData

#: Metrics of the backend comparison (:func:`backend_comparison`): (trial column, label).
BACKEND_METRICS = (("throughput_rps", "req/s"), ("latency_p99_ms", "p99 ms"),
                   ("pss_mib_peak", "PSS peak MiB"))

ENGINE_COLUMNS = ("server", "interface", "backend", "windows", "engine_mib_peak",
                  "engine_mib_mean", "pss_mib_peak", "rss_mib_peak", "engine_minus_pss_mib",
                  "engine_to_pss")


def engine_memory(run: RunData | Analysis) -> pd.DataFrame:
    """The container engine's memory figure beside psutil's PSS, per server config.

    Over the measurement windows of the config's ok trials: ``engine_mib_peak`` /
    ``engine_mib_mean`` (MiB) from ``samples.csv`` rows with ``source == "engine"`` (the
    docker engine's stats: cgroup memory usage less inactive page cache, in
    ``rss_mib``); ``pss_mib_peak`` and ``rss_mib_peak`` (MiB) from psutil's samples of
    the same processes (``source == "server"``); ``engine_minus_pss_mib`` = engine peak
    - PSS peak (MiB) and ``engine_to_pss`` = engine peak / PSS peak. ``windows``: ok
    trials with at least one engine sample. Columns :data:`ENGINE_COLUMNS`, one row per
    config that has engine samples; empty when the run has none (local backend).
    """
    return _engine_memory(as_analysis(run)).copy()


@once
def _engine_memory(a: Analysis) -> pd.DataFrame:
    engine = a.samples[a.samples["source"] == "engine"].dropna(subset=["t_s", "rss_mib"])
    if engine.empty:
        return pd.DataFrame(columns=list(ENGINE_COLUMNS))
    server_side = a.samples[a.samples["source"] == "server"].dropna(subset=["t_s"])
    ok = a.trials[a.trials["status"] == "ok"].dropna(subset=["t_start_s", "t_end_s"])
    rows = []
    for server in a.configs:
        windows = ok[ok["server"] == server]
        inside_e: list[pd.DataFrame] = []
        inside_s: list[pd.DataFrame] = []
        for t in windows.itertuples(index=False):
            e = engine[(engine["server"] == server) & (engine["t_s"] >= t.t_start_s)
                       & (engine["t_s"] < t.t_end_s)]
            if e.empty:
                continue
            inside_e.append(e)
            inside_s.append(server_side[(server_side["server"] == server)
                                        & (server_side["t_s"] >= t.t_start_s)
                                        & (server_side["t_s"] < t.t_end_s)])
        if not inside_e:
            continue
        e_all, s_all = pd.concat(inside_e), pd.concat(inside_s)
        peak, pss = float(e_all["rss_mib"].max()), _float(s_all["pss_mib"].max())
        backends = sorted({b for b in windows["backend"] if b})
        rows.append({"server": server, "interface": a.configs[server],
                     "backend": ", ".join(backends) or a.run.meta.backend or "",
                     "windows": len(inside_e), "engine_mib_peak": peak,
                     "engine_mib_mean": float(e_all["rss_mib"].mean()), "pss_mib_peak": pss,
                     "rss_mib_peak": _float(s_all["rss_mib"].max()),
                     "engine_minus_pss_mib": peak - pss,
                     "engine_to_pss": peak / pss if pss > 0 else math.nan})
    return pd.DataFrame(rows, columns=list(ENGINE_COLUMNS))


#: Columns of :func:`backend_comparison`.
BACKEND_COLUMNS = (
    "scenario", "server", "interface", "workers", "users", "offered_rps", "baseline",
    "backend", *(f"{m}_{side}" for m, _ in BACKEND_METRICS for side in ("baseline", "other")),
    *(f"{m}_ratio" for m, _ in BACKEND_METRICS), "state_baseline", "state")


def _run_backend(run: RunData) -> str:
    return run.meta.backend or ""


def backend_comparison(runs: Sequence[RunData | Analysis]) -> pd.DataFrame:
    """The same scenario under different backends, level by level.

    Runs are grouped by scenario (name and request, so different parameters never meet);
    a trial's backend is its ``backend`` column, else run.json's ``backend``, else
    ``local``. Within a scenario measured under two or more backends, the baseline is
    ``local`` when present (else the first by name) and every other backend is set
    beside it per (server, workers, level): for each of :data:`BACKEND_METRICS`
    (throughput req/s, p99 ms, PSS peak MiB) the median over ok repeats on each side
    (``<metric>_baseline``, ``<metric>_other``) and ``<metric>_ratio`` = other /
    baseline. ``state_baseline`` / ``state``: ``ok``, or why there is no figure (``"not
    measured"``, ``"unsupported: <reason>"``, ...). Columns :data:`BACKEND_COLUMNS`;
    empty when no scenario has two backends.
    """
    frames = []
    for given in runs:
        run = given.run if isinstance(given, Analysis) else given
        trials = given.trials.copy() if isinstance(given, Analysis) else _trials(run)
        if trials.empty:
            continue
        scenario = run.meta.scenario
        name = scenario.name or ""
        fallback = _run_backend(run) or "local"
        trials["backend"] = [b or fallback for b in trials["backend"]]
        trials["scenario"] = [(name or t or "?") + "\t" + (scenario.request_path or "")
                              for t in trials["scenario"]]
        frames.append(trials)
    trials = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if trials.empty or trials.groupby("scenario")["backend"].nunique().max() < 2:
        return pd.DataFrame(columns=list(BACKEND_COLUMNS))
    metrics = tuple(m for m, _ in BACKEND_METRICS)
    levels = stats.summarize_repeats(trials, metrics)
    keys = ["scenario", "server", "workers", "users", "offered_rps"]
    rows = []
    for workload, part in levels.groupby("scenario", sort=True):
        backends = sorted(set(part["backend"]), key=lambda b: (b != "local", b))
        if len(backends) < 2:
            continue
        baseline = backends[0]
        for key, group in part.groupby(keys[1:], dropna=False, sort=True):
            base = group[group["backend"] == baseline]
            for other in backends[1:]:
                mine = group[group["backend"] == other]
                row: dict[str, Any] = dict(zip(keys, (workload, *key), strict=True))
                row.update(scenario=str(workload).split("\t")[0], baseline=baseline,
                           backend=other,
                           interface=_first_text(group["interface"]),
                           state_baseline=_level_state(trials, base, workload, key, baseline),
                           state=_level_state(trials, mine, workload, key, other))
                for metric in metrics:
                    b = _float(base[f"{metric}_median"].iloc[0]) if len(base) else math.nan
                    o = _float(mine[f"{metric}_median"].iloc[0]) if len(mine) else math.nan
                    row[f"{metric}_baseline"], row[f"{metric}_other"] = b, o
                    row[f"{metric}_ratio"] = o / b if b > 0 and not math.isnan(o) else math.nan
                rows.append(row)
    return pd.DataFrame(rows, columns=list(BACKEND_COLUMNS))


def _first_text(values: Iterable[Any]) -> str:
    return next((str(v) for v in values if isinstance(v, str) and v), "")


def _level_state(trials: pd.DataFrame, summary: pd.DataFrame, workload: Any,
                 key: tuple[Any, ...], backend: str) -> str:
    """``ok`` when ``summary`` (one level of one backend) has ok repeats, else why not."""
    if summary.empty:
        return "not measured"
    if int(summary["n"].iloc[0]) > 0:
        return "ok"
    server, workers, users, offered = key
    rows = trials[(trials["scenario"] == workload) & (trials["server"] == server)
                  & (trials["backend"] == backend)
                  & _same(trials["workers"], workers) & _same(trials["users"], users)
                  & _same(trials["offered_rps"], offered)]
    if rows.empty:
        return "no ok trial"
    status = min(set(rows["status"]), key=lambda x: (_STATUS_ORDER.get(x, 9), x))
    reasons = sorted({r for r in rows.loc[rows["status"] == status, "reason"] if r})
    return f"{status}: {'; '.join(reasons)}" if reasons else status


def _same(column: pd.Series, value: Any) -> pd.Series:
    """Elementwise equality where NaN equals NaN (group keys may be NaN)."""
    return column.isna() if pd.isna(value) else column == value

