"""Statistics a performance engineer would sign: repeats, scalability, capacity.

Pure functions on DataFrames of trial rows as written to ``trials.csv`` (columns
:data:`harness.results.TRIAL_COLUMNS`, units in the names: ``_ms``, ``_rps``, ``_mib``,
``_percent`` of one core). Only trials with ``status == "ok"`` enter any figure here;
the others are counted, never averaged in. Nothing here reads files or a clock.

``summarize_repeats(trials)`` returns one row per (scenario, server, app, backend, workers,
users, offered_rps) -- :data:`LEVEL_KEYS`; ``offered_rps`` is the open-loop arrival rate
(req/s), NaN under closed-loop load, and is taken as NaN when the input lacks it; ``app``
(harness.stacks) is taken as ``raw`` when the input lacks it --
with columns, in this order:

=========================  ==========================================================
``scenario`` ... ``offered_rps``  the group keys
``interface``               ``wsgi`` / ``asgi`` (first non-empty value of the group)
``trials``                  trials in the group, whatever their status
``n``                       ``ok`` trials: the repeats that count
``statuses``                e.g. ``"ok×2, invalid×1"``
``<m>_median``              median of metric ``m`` over the ok repeats (the central
                            figure everywhere: never the best of N)
``<m>_mean``                arithmetic mean over the ok repeats
``<m>_ci_low/_ci_high``     95 % confidence interval of the **mean**, Student's t
                            (mean +- t(0.975, n-1) s / sqrt(n)); NaN when n < 2
``<m>_cv``                  coefficient of variation s / mean (s with ddof=1);
                            NaN when n < 2 or mean == 0
``<m>_noisy``               ``True`` when ``<m>_cv`` > :data:`NOISY_CV` (5 %);
                            ``False`` when the CV is NaN (unknown, not quiet)
=========================  ==========================================================

for each ``m`` of :data:`SUMMARY_METRICS` (a metric missing from the input gives NaN
columns, so the output columns never depend on the input). NaN values of a metric in
an ok trial (e.g. PSS not sampled) are left out of that metric's figures only.

Why a t-interval for the mean and not a bootstrap of the median: benchmarks run 3-5
repeats, and a percentile bootstrap at n = 3 can only return values among the three
samples (it under-covers badly); the t-interval is exact for normal noise at any n >= 2
and close for the mildly skewed noise of repeated throughput measurements.

``capacity_table(trials, slo_p99_ms, slo_max_error_rate)`` returns one row per server
config and app -- (scenario, server, app, backend, workers), :data:`CONFIG_KEYS` -- with
the columns of :data:`CAPACITY_COLUMNS`:

====================================  ================================================
``scenario, server, interface,``      the config
``backend, workers``
``levels``                            distinct levels with >= 1 ok trial
``repeats``                           most ok repeats at any level
``slo_p99_ms, slo_max_error_rate``    the SLO the table was computed against
``sustainable_users``                 the max-sustainable level: among levels whose
                                      median p99 <= SLO p99 and median error rate <=
                                      bound, the one with the highest median
                                      throughput (ties: the lighter level)
``sustainable_offered_rps``           its open-loop arrival rate (NaN: closed loop)
``sustainable_rps``                   its median throughput (req/s, successes only)
``sustainable_rps_ci_low/_high``      95 % t-interval of the mean throughput there
                                      (NaN with one repeat)
``sustainable_n``                     ok repeats at that level
``sustainable_p50_ms/_p95_ms/_p99_ms``  median latency percentiles there (ms)
``sustainable_error_rate``            median error rate there (fraction)
``sustainable_cpu_percent``           median server CPU there (% of one core)
``sustainable_pss_mib``               median peak PSS of the whole server tree (MiB)
``pss_mib_per_worker``                sustainable_pss_mib / workers: approximate, the
                                      tree also holds the master/arbiter process
``rps_per_core``                      sustainable_rps / sustainable_cpu_percent * 100:
                                      req/s per fully used core, a linear extrapolation
                                      (large and unreliable when the CPU is nearly idle)
``sustainable_pss_kib_per_connection``  median ``pss_kib_per_connection`` there (stream
                                      scenarios; NaN when the column is absent)
``sustainable_noisy``                 throughput CV > 5 % across repeats there
``sustainable_cpu_ms_per_request``    median server CPU time per successful request
                                      there (ms; NaN for runs before schema 3)
``peak_rps, peak_users,``             highest median throughput of any ok level, SLO or
``peak_offered_rps``                  not, and its level
``usl_lambda, usl_sigma, usl_kappa,``  Universal Scalability Law fit over every ok
``usl_r2, usl_peak_users``            closed-loop trial (see :func:`usl_fit`), N = users;
                                      NaN with < 4 levels or under open-loop load
``note``                              why a figure is missing ("" when none is)
``app, framework_version``            the app served (``raw`` or a framework flavour)
                                      and its framework's version ("" for raw)
====================================  ================================================

``plan_instances(capacity, target_rps)`` adds ``instances_needed`` (Int64, <NA> without a
sustainable level), ``instances_pss_mib`` (MiB) and ``cores_needed`` (target x CPU ms per
request / 1000: the server CPU the target load costs at that level's latency); ``instances_needed(target, rps)``
is the arithmetic (ceil(target / (rps x 0.7))); ``ratio_ci(a, b)`` is the ratio of
medians of two samples with a percentile-bootstrap interval (WSGI vs ASGI).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

#: Keys of one load level of one stack (server config and app).
LEVEL_KEYS = ("scenario", "server", "app", "backend", "workers", "users", "offered_rps")
#: Keys of one stack: a server config serving an app (harness.stacks).
CONFIG_KEYS = ("scenario", "server", "app", "backend", "workers")
#: Metrics summarised by default (trial columns, units in their names).
SUMMARY_METRICS = ("throughput_rps", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
                   "error_rate", "cpu_percent_mean", "pss_mib_peak")
#: Suffixes of the per-metric columns of :func:`summarize_repeats`, in order.
SUMMARY_SUFFIXES = ("median", "mean", "ci_low", "ci_high", "cv", "noisy")
#: Coefficient of variation above which repeats are flagged ``noisy`` (5 %).
NOISY_CV = 0.05
#: Confidence level of every interval here.
CONFIDENCE = 0.95
#: Default headroom of :func:`instances_needed`: run each instance at <= 70 % of its
#: max sustainable throughput.
DEFAULT_HEADROOM = 0.7

CAPACITY_COLUMNS = (
    "scenario", "server", "interface", "backend", "workers", "levels", "repeats",
    "slo_p99_ms", "slo_max_error_rate",
    "sustainable_users", "sustainable_offered_rps", "sustainable_rps", "sustainable_rps_ci_low",
    "sustainable_rps_ci_high", "sustainable_n", "sustainable_p50_ms", "sustainable_p95_ms",
    "sustainable_p99_ms", "sustainable_error_rate", "sustainable_cpu_percent",
    "sustainable_pss_mib", "pss_mib_per_worker", "rps_per_core",
    "sustainable_pss_kib_per_connection", "sustainable_noisy",
    "sustainable_cpu_ms_per_request",
    "peak_rps", "peak_users", "peak_offered_rps",
    "usl_lambda", "usl_sigma", "usl_kappa", "usl_r2", "usl_peak_users",
    "note",
    "app", "framework_version",
)

_CAPACITY_METRICS = (*SUMMARY_METRICS, "pss_kib_per_connection", "cpu_ms_per_request")


def summary_columns(metrics: Sequence[str] = SUMMARY_METRICS) -> list[str]:
    """The columns :func:`summarize_repeats` returns for ``metrics``, in order."""
    return [*LEVEL_KEYS, "interface", "trials", "n", "statuses",
            *(f"{m}_{s}" for m in metrics for s in SUMMARY_SUFFIXES)]


def describe(values: Any, confidence: float = CONFIDENCE) -> dict[str, float | bool]:
    """Median, mean, t-interval of the mean, CV and noisy flag of one sample.

    ``values``: 1-D array-like of repeats (NaN dropped). Returns a dict keyed by
    :data:`SUMMARY_SUFFIXES`. CI: mean +- t(1 - alpha/2, n - 1) * s / sqrt(n), Student
    (1908), via ``scipy.stats.t.interval``; NaN for n < 2; a zero-width interval when
    every repeat is equal. CV = s / mean with s the sample standard deviation (ddof=1).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    out: dict[str, float | bool] = dict.fromkeys(SUMMARY_SUFFIXES, math.nan)
    out["noisy"] = False
    if n == 0:
        return out
    mean = float(x.mean())
    out["median"], out["mean"] = float(np.median(x)), mean
    if n < 2:
        return out
    sd = float(x.std(ddof=1))
    if sd == 0.0:
        out["ci_low"] = out["ci_high"] = mean
    else:
        low, high = scipy.stats.t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
        out["ci_low"], out["ci_high"] = float(low), float(high)
    out["cv"] = sd / mean if mean != 0 else math.nan
    out["noisy"] = bool(out["cv"] > NOISY_CV)  # NaN > x is False
    return out


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"trials lack column(s) {', '.join(missing)}")


def _with_offered(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with an ``offered_rps`` column (NaN = closed loop) and an ``app`` column
    (``raw``) if it had none."""
    if "offered_rps" not in trials.columns:
        trials = trials.assign(offered_rps=math.nan)
    if "app" not in trials.columns:
        trials = trials.assign(app="raw")
    return trials


def _level_text(users: Any, offered_rps: Any) -> str:
    offered = _float(offered_rps)
    return f"{_float(users):g} users" if math.isnan(offered) else f"{offered:g} req/s offered"


def _first_text(values: pd.Series) -> str:
    for v in values:
        if isinstance(v, str) and v:
            return v
    return ""


def _statuses(values: pd.Series) -> str:
    counts = values.fillna("").astype(str).value_counts(sort=False)
    order = {"ok": 0, "invalid": 1, "unsupported": 2, "failed": 3}
    items = sorted(counts.items(), key=lambda kv: (order.get(kv[0], 4), kv[0]))
    return ", ".join(f"{s or '(none)'}×{n}" for s, n in items)


def summarize_repeats(trials: pd.DataFrame, metrics: Sequence[str] = SUMMARY_METRICS,
                      confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Repeats of each level of each config (:data:`LEVEL_KEYS`) summarised over ``ok`` trials.

    ``trials``: rows as in trials.csv (at least :data:`LEVEL_KEYS` but ``offered_rps``,
    and ``status``). Returns one row per group, groups with no ok trial included (n = 0,
    NaN figures), sorted by the keys; columns :func:`summary_columns` (see the module
    docstring).

    Raises:
        ValueError: a key column (other than ``offered_rps``) or ``status`` is missing.
    """
    trials = _with_offered(trials)
    _require(trials, (*LEVEL_KEYS, "status"))
    columns = summary_columns(metrics)
    rows: list[dict[str, Any]] = []
    if trials.empty:
        return pd.DataFrame(columns=columns)
    for keys, group in trials.groupby(list(LEVEL_KEYS), dropna=False, sort=True):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = dict(zip(LEVEL_KEYS, keys, strict=True))
        row.update(interface=_first_text(group["interface"]) if "interface" in group else "",
                   trials=len(group), n=len(ok), statuses=_statuses(group["status"]))
        for metric in metrics:
            values = (pd.to_numeric(ok[metric], errors="coerce") if metric in ok.columns
                      else pd.Series(dtype=float))
            for suffix, value in describe(values, confidence).items():
                row[f"{metric}_{suffix}"] = value
        rows.append(row)
    out = pd.DataFrame(rows, columns=columns)
    for metric in metrics:
        out[f"{metric}_noisy"] = out[f"{metric}_noisy"].astype(bool)
    return out


# --- Universal Scalability Law ---------------------------------------------------------


#: A USL peak concurrency further than this multiple of the highest measured level is
#: reported as ``inf``: it would be an extrapolation the data cannot support.
PEAK_EXTRAPOLATION_LIMIT = 100.0


def usl_throughput(users: Any, lambda_: float, sigma: float, kappa: float) -> np.ndarray:
    """USL throughput X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)) (Gunther 1993).

    ``users``: N, array-like of concurrency levels; ``lambda_``: throughput of one user
    (req/s); ``sigma``: contention (serial fraction); ``kappa``: coherency (crosstalk).
    Returns req/s, same shape as ``users``.
    """
    n = np.asarray(users, dtype=float)
    return lambda_ * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


@dataclass(frozen=True, slots=True)
class UslFit:
    """A least-squares fit of the Universal Scalability Law (Gunther 1993).

    ``lambda_`` req/s per user at N = 1; ``sigma`` contention and ``kappa`` coherency,
    both in [0, 1]; ``r2`` = 1 - SS_res / SS_tot over the fitted points (1.0 for a
    perfect fit of constant data); ``peak_users`` N* = sqrt((1 - sigma) / kappa)
    (Gunther 2007, eq. 4.33), ``inf`` when kappa == 0 or when N* lies beyond
    :data:`PEAK_EXTRAPOLATION_LIMIT` times the highest level measured (the data show no
    retrograde region, so no peak can be claimed); ``levels`` distinct N fitted.
    """

    lambda_: float
    sigma: float
    kappa: float
    r2: float
    peak_users: float
    levels: int

    def throughput(self, users: Any) -> np.ndarray:
        """Fitted throughput (req/s) at ``users`` (array-like)."""
        return usl_throughput(users, self.lambda_, self.sigma, self.kappa)


#: Starting points (sigma, kappa) tried by :func:`usl_fit`; the best least-squares wins.
_USL_STARTS = tuple((s, k) for s in (0.01, 0.1, 0.5, 0.9) for k in (1e-6, 1e-4, 1e-2))


def usl_fit(users: Any, throughput: Any) -> UslFit | None:
    """Fit the USL to measured (users, throughput) points with ``scipy.optimize.curve_fit``.

    ``users``: concurrency N per point; ``throughput``: req/s per point (repeats may
    share an N). Bounds: lambda > 0, sigma and kappa in [0, 1] (trust-region reflective);
    several starting points, the smallest residual sum of squares wins. Points with a
    NaN, N <= 0 or negative throughput are dropped.

    Returns None when fewer than 4 distinct N remain (three parameters need at least
    one degree of freedom) or when no start converges.

    Raises:
        ValueError: ``users`` and ``throughput`` differ in length.
    """
    n = np.asarray(users, dtype=float).ravel()
    x = np.asarray(throughput, dtype=float).ravel()
    if n.shape != x.shape:
        raise ValueError(f"users ({n.size}) and throughput ({x.size}) differ in length")
    keep = np.isfinite(n) & np.isfinite(x) & (n > 0) & (x >= 0)
    n, x = n[keep], x[keep]
    levels = len(np.unique(n))
    if levels < 4:
        return None
    lambda0 = max(float(np.max(x / n)), 1e-9)
    best: tuple[float, np.ndarray] | None = None
    for sigma0, kappa0 in _USL_STARTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
                params, _ = scipy.optimize.curve_fit(
                    usl_throughput, n, x, p0=(lambda0, sigma0, kappa0),
                    bounds=((1e-12, 0.0, 0.0), (np.inf, 1.0, 1.0)), x_scale="jac",
                    max_nfev=5000)
        except (RuntimeError, ValueError):
            continue
        sse = float(np.sum((x - usl_throughput(n, *params)) ** 2))
        if best is None or sse < best[0]:
            best = (sse, params)
    if best is None:
        return None
    sse, (lam, sigma, kappa) = best
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    scale = max(float(np.sum(x ** 2)), 1e-300)
    if ss_tot > 1e-12 * scale:
        r2 = 1.0 - sse / ss_tot
    else:
        r2 = 1.0 if sse <= 1e-12 * scale else math.nan
    peak = math.inf if kappa <= 0 else math.sqrt(max(0.0, 1.0 - sigma) / kappa)
    if peak > PEAK_EXTRAPOLATION_LIMIT * float(n.max()):
        # A kappa of ~1e-20 puts N* at ~1e10 users: no retrograde region in the data.
        peak = math.inf
    return UslFit(float(lam), float(sigma), float(kappa), float(r2), peak, levels)


# --- capacity -------------------------------------------------------------------------


def instances_needed(target_rps: float, sustainable_rps: float,
                     headroom: float = DEFAULT_HEADROOM) -> int:
    """Instances to serve ``target_rps`` with each at <= ``headroom`` of its capacity.

    ceil(target / (sustainable x headroom)). The headroom factor (default 0.7: run each
    instance at no more than 70 % of its max sustainable throughput) leaves room for
    bursts, a lost instance and the noise of the measurement. A quotient within 1e-9 of
    an integer counts as that integer (float noise must not add an instance).

    Raises:
        ValueError: target < 0 or not finite, sustainable <= 0 or not finite, headroom
            outside (0, 1].
    """
    if not math.isfinite(target_rps) or target_rps < 0:
        raise ValueError(f"target_rps {target_rps}: must be a finite number >= 0")
    if not math.isfinite(sustainable_rps) or sustainable_rps <= 0:
        raise ValueError(f"sustainable_rps {sustainable_rps}: must be a finite number > 0")
    if not 0 < headroom <= 1:
        raise ValueError(f"headroom {headroom}: must be in (0, 1]")
    quotient = target_rps / (sustainable_rps * headroom)
    nearest = round(quotient)
    if abs(quotient - nearest) <= 1e-9 * max(1.0, quotient):
        return int(nearest)
    return math.ceil(quotient)


def plan_instances(capacity: pd.DataFrame, target_rps: float,
                   headroom: float = DEFAULT_HEADROOM) -> pd.DataFrame:
    """``capacity`` (from :func:`capacity_table`) plus ``instances_needed`` (int, <NA>
    where no level met the SLO) and ``instances_pss_mib`` (instances x
    sustainable_pss_mib, MiB). See :func:`instances_needed` for the formula and errors.
    """
    out = capacity.copy()
    needed = [instances_needed(target_rps, float(rps), headroom)
              if math.isfinite(float(rps)) and float(rps) > 0 else pd.NA
              for rps in out["sustainable_rps"]]
    out["instances_needed"] = pd.array(needed, dtype="Int64")
    out["instances_pss_mib"] = [math.nan if n is pd.NA else n * _float(pss)
                                for n, pss in zip(needed, out["sustainable_pss_mib"], strict=True)]
    cpu_ms = out.get("sustainable_cpu_ms_per_request",
                     pd.Series(math.nan, index=out.index, dtype=float))
    out["cores_needed"] = [target_rps * _float(ms) / 1000.0 for ms in cpu_ms]
    return out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _config_row(keys: tuple[Any, ...], trials: pd.DataFrame, slo_p99_ms: float,
                slo_max_error_rate: float) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(CAPACITY_COLUMNS, math.nan)
    row.update(dict(zip(CONFIG_KEYS, keys, strict=True)))
    row.update(interface=_first_text(trials["interface"]) if "interface" in trials else "",
               framework_version=(_first_text(trials["framework_version"])
                                  if "framework_version" in trials else ""),
               slo_p99_ms=slo_p99_ms, slo_max_error_rate=slo_max_error_rate,
               sustainable_noisy=False, note="")
    levels = summarize_repeats(trials, _CAPACITY_METRICS)
    ok_levels = levels[levels["n"] > 0]
    row["levels"] = len(ok_levels[["users", "offered_rps"]].drop_duplicates())
    row["repeats"] = int(ok_levels["n"].max()) if len(ok_levels) else 0
    if ok_levels.empty:
        bad = trials[trials["status"] != "ok"]
        why = bad["reason"] if "reason" in bad else pd.Series([""] * len(bad), index=bad.index)
        # "invalid: generator-saturated: load CPUs 96% busy" -> "invalid: generator-saturated"
        kinds = pd.Series([f"{s}: {r.split(':')[0]}" if isinstance(r, str) and r else str(s)
                           for s, r in zip(bad["status"], why, strict=True)], dtype=object)
        counts = kinds.value_counts().sort_index()
        row["note"] = "no ok trial" + (" (" + "; ".join(
            f"{n}× {k}" for k, n in counts.items()) + ")" if len(counts) else "")
        return row
    with_rps = ok_levels.dropna(subset=["throughput_rps_median"])
    if len(with_rps):
        peak = with_rps.sort_values(["throughput_rps_median", "offered_rps", "users"],
                                    ascending=[False, True, True]).iloc[0]
        row.update(peak_rps=peak["throughput_rps_median"], peak_users=peak["users"],
                   peak_offered_rps=peak["offered_rps"])
    meets = ok_levels[(ok_levels["latency_p99_ms_median"] <= slo_p99_ms)
                      & (ok_levels["error_rate_median"] <= slo_max_error_rate)
                      & ok_levels["throughput_rps_median"].notna()]
    if meets.empty:
        p99 = ok_levels.dropna(subset=["latency_p99_ms_median"])
        if len(p99):
            low = p99.loc[p99["latency_p99_ms_median"].idxmin()]
            row["note"] = (f"no level met the SLO (p99 <= {slo_p99_ms:g} ms, errors <= "
                           f"{slo_max_error_rate:.2%}); lowest median p99 "
                           f"{low['latency_p99_ms_median']:.1f} ms at "
                           f"{_level_text(low['users'], low['offered_rps'])}")
        else:
            row["note"] = "no level met the SLO: no latency measured"
    else:
        best = meets.sort_values(["throughput_rps_median", "offered_rps", "users"],
                                 ascending=[False, True, True]).iloc[0]
        row.update(
            sustainable_users=best["users"], sustainable_offered_rps=best["offered_rps"],
            sustainable_rps=best["throughput_rps_median"],
            sustainable_rps_ci_low=best["throughput_rps_ci_low"],
            sustainable_rps_ci_high=best["throughput_rps_ci_high"],
            sustainable_n=best["n"], sustainable_p50_ms=best["latency_p50_ms_median"],
            sustainable_p95_ms=best["latency_p95_ms_median"],
            sustainable_p99_ms=best["latency_p99_ms_median"],
            sustainable_error_rate=best["error_rate_median"],
            sustainable_cpu_percent=best["cpu_percent_mean_median"],
            sustainable_pss_mib=best["pss_mib_peak_median"],
            sustainable_pss_kib_per_connection=best["pss_kib_per_connection_median"],
            sustainable_noisy=bool(best["throughput_rps_noisy"]),
            sustainable_cpu_ms_per_request=best.get("cpu_ms_per_request_median", math.nan),
        )
        workers = _float(keys[CONFIG_KEYS.index("workers")])
        if workers > 0:
            row["pss_mib_per_worker"] = row["sustainable_pss_mib"] / workers
        cpu = _float(row["sustainable_cpu_percent"])
        if cpu > 0:
            row["rps_per_core"] = row["sustainable_rps"] / cpu * 100.0
    # USL's N is concurrency: closed-loop levels only (open loop's users is a cap).
    ok = trials[(trials["status"] == "ok") & trials["offered_rps"].isna()]
    fit = usl_fit(pd.to_numeric(ok["users"], errors="coerce"),
                  pd.to_numeric(ok["throughput_rps"], errors="coerce"))
    if fit is not None:
        row.update(usl_lambda=fit.lambda_, usl_sigma=fit.sigma, usl_kappa=fit.kappa,
                   usl_r2=fit.r2, usl_peak_users=fit.peak_users)
    return row


def capacity_table(trials: pd.DataFrame, slo_p99_ms: float,
                   slo_max_error_rate: float) -> pd.DataFrame:
    """Capacity of each server config within an SLO, from ``ok`` trials only.

    ``trials``: rows as in trials.csv (``offered_rps`` optional); ``slo_p99_ms``: p99 latency bound (ms);
    ``slo_max_error_rate``: error-rate bound (fraction, e.g. 0.01). A level is
    sustainable when its median p99 over ok repeats <= ``slo_p99_ms`` and its median
    error rate <= ``slo_max_error_rate``; the max sustainable throughput is the highest
    median throughput among sustainable levels. Returns one row per (scenario, server,
    backend, workers), sorted by those keys, with :data:`CAPACITY_COLUMNS` (see the
    module docstring); a config with no sustainable level gets NaN figures and a note.

    Raises:
        ValueError: an SLO bound is NaN or negative, or a key column / ``status`` /
            ``throughput_rps`` / ``latency_p99_ms`` / ``error_rate`` is missing.
    """
    if not slo_p99_ms > 0 or not math.isfinite(slo_p99_ms):
        raise ValueError(f"slo_p99_ms {slo_p99_ms}: must be a finite number > 0")
    if not slo_max_error_rate >= 0 or not math.isfinite(slo_max_error_rate):
        raise ValueError(f"slo_max_error_rate {slo_max_error_rate}: must be a finite number >= 0")
    trials = _with_offered(trials)
    _require(trials, (*LEVEL_KEYS, "status", "throughput_rps", "latency_p99_ms", "error_rate"))
    rows = [_config_row(keys, group, float(slo_p99_ms), float(slo_max_error_rate))
            for keys, group in trials.groupby(list(CONFIG_KEYS), dropna=False, sort=True)]
    out = pd.DataFrame(rows, columns=list(CAPACITY_COLUMNS))
    out["sustainable_noisy"] = out["sustainable_noisy"].astype(bool)
    out["note"] = out["note"].astype(str)
    return out


def ratio_ci(numerator: Any, denominator: Any, confidence: float = CONFIDENCE,
             n_resamples: int = 9999, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians of two independent samples, with a bootstrap confidence interval.

    Returns (median(numerator) / median(denominator), low, high). The interval is the
    percentile bootstrap (Efron & Tibshirani 1993, ch. 13) of ``scipy.stats.bootstrap``
    resampling each sample on its own, with a fixed ``seed`` so a report is
    reproducible. NaN bounds when either sample has fewer than 2 values; the ratio is
    NaN when a sample is empty or the denominator's median is 0. With 3-5 repeats per
    sample the interval is rough (it tends to be too narrow); treat it as indicative.
    """
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if not len(a) or not len(b) or np.median(b) == 0:
        return math.nan, math.nan, math.nan
    ratio = float(np.median(a) / np.median(b))
    if len(a) < 2 or len(b) < 2:
        return ratio, math.nan, math.nan

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.median(x, axis=axis) / np.median(y, axis=axis)

    result = scipy.stats.bootstrap((a, b), statistic, n_resamples=n_resamples,
                                   vectorized=True, paired=False,
                                   confidence_level=confidence, method="percentile",
                                   rng=np.random.default_rng(seed))
    return ratio, float(result.confidence_interval.low), float(result.confidence_interval.high)
