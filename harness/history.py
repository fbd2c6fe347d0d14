"""The history dashboard: how each metric of each configuration moved over many runs.

:func:`collect` reads every run folder under a results folder, orders the runs by start
time, and builds one :class:`Series` per (scenario with its parameters, configuration,
metric): for each run the median, min and max of its ok repeats. :func:`overview` sums
each series up (latest value, change against the previous run and since the last change
point, whether that change point was a regression). :mod:`harness.history_page` draws
the page (the overview, then the series as small multiples).

Which trials count: the ``ok`` trials of every run, whatever the run's status. A run
that is not ``complete`` (interrupted, failed, still running) contributes what it
measured, drawn with a distinct marker and named in the hover and the runs table.
Runs from different machines (CPU model, logical CPUs) are kept apart: the machine is
part of a series' identity when the folder holds more than one.

Change points (:func:`detect_change_points`): binary segmentation (Scott & Knott 1974;
Vostrikova 1981) with Welch's two-sample t-test (Welch 1947, scipy.stats.ttest_ind with
``equal_var=False``). In a segment of runs every split that leaves at least two values
on each side is a candidate; the repeats of the runs before and after the split are the
two samples. Among candidates whose relative change of the medians reaches the metric's
minimum effect, the one with the smallest p is accepted when p times the number of
candidates (Bonferroni over the splits tried) is at most ``alpha``; then both halves are
searched again. Caveat: repeats of one run share that run's conditions, so treating them
as independent understates run-to-run noise; the minimum effect is what keeps
run-to-run drift from being reported as a change.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from harness.compare import config_label, plain_value
from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.errors import UserError
from harness.gates import DEFAULT_MIN_EFFECT, FALLBACK_MIN_EFFECT, METRICS, MetricSpec
from harness.results import RunData, load_run
from harness.runmeta import RunMeta

_CONFIG = ("server", "app", "workers", "users", "offered_rps", "backend")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run on the history's x axis; ``position`` is its index in start-time order."""

    position: int
    run_id: str
    started_at: str
    commit: str
    status: str
    label: str
    machine: str
    ok_trials: int
    trials: int


@dataclass(frozen=True, slots=True)
class ChangePoint:
    """A step in a series: the first run after it (``position``, ``run_id``, ``label``),
    the medians of the segments before and after it (metric unit), their relative change,
    and Welch's p times the number of splits tried."""

    position: int
    run_id: str
    label: str
    before: float
    after: float
    change: float
    p_value: float


@dataclass(frozen=True)
class Series:
    """One trend: ``points`` has one row per run with ok values (columns position, run_id,
    label, median, min, max, n, complete) in start-time order."""

    scenario: str
    config: dict[str, Any]
    machine: str
    metric: MetricSpec
    points: pd.DataFrame
    change_points: list[ChangePoint] = field(default_factory=list)

    @property
    def title(self) -> str:
        where = f" · {self.machine}" if self.machine else ""
        return f"{self.scenario} · {config_label(self.config)}{where} · {self.metric.label}"


@dataclass(frozen=True)
class History:
    runs: list[RunInfo]
    series: list[Series]
    skipped: list[str]
    alpha: float
    min_effects: dict[str, float]


def _welch_p(left: np.ndarray, right: np.ndarray) -> float:
    if np.ptp(left) == 0 and np.ptp(right) == 0:  # no spread: the t statistic is undefined
        return 0.0 if left[0] != right[0] else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(left, right, equal_var=False).pvalue)
    return 1.0 if math.isnan(p) else p


def detect_change_points(groups: Sequence[Sequence[float]], *, alpha: float = DEFAULT_ALPHA,
                         min_effect: float = FALLBACK_MIN_EFFECT,
                         ) -> list[tuple[int, float, float, float, float]]:
    """Change points of a series given as ``groups[i]`` = the repeat values of run ``i``
    (in order; NaNs dropped), by the module's binary segmentation with Welch's t-test.

    Returns ``(index, before_median, after_median, relative_change, p_bonferroni)`` per
    change point, sorted by index; ``index`` is the first run after the change.
    """
    data = [np.asarray(g, dtype=float) for g in groups]
    data = [g[np.isfinite(g)] for g in data]
    found: list[tuple[int, float, float, float, float]] = []

    def search(lo: int, hi: int) -> None:
        candidates = []
        for s in range(lo + 1, hi):
            left, right = np.concatenate(data[lo:s]), np.concatenate(data[s:hi])
            if len(left) < 2 or len(right) < 2:
                continue
            before, after = float(np.median(left)), float(np.median(right))
            change = (after - before) / abs(before) if before else (0.0 if after == 0 else math.inf)
            candidates.append((s, before, after, change, _welch_p(left, right)))
        eligible = [c for c in candidates if abs(c[3]) >= min_effect]
        if not eligible:
            return
        best = min(eligible, key=lambda c: (c[4], -abs(c[3])))
        p_adjusted = min(1.0, best[4] * len(candidates))
        if p_adjusted > alpha:
            return
        found.append((*best[:4], p_adjusted))
        search(lo, best[0])
        search(best[0], hi)

    search(0, len(data))
    return sorted(found)


def _label(meta: RunMeta, run_id: str) -> str:
    commit = meta.git.commit or ""
    return (commit[:7] + ("*" if meta.git.dirty else "")) if commit else run_id


def start_key(run: RunData) -> tuple[bool, int, str]:
    """Start time first (runs without a readable one last), then run id."""
    ts = pd.to_datetime(run.meta.started_at, utc=True, errors="coerce")
    missing = ts is None or pd.isna(ts)
    return missing, 0 if missing else int(ts.value), run.meta.run_id or run.path.name


def load_runs(results_dir: Path) -> tuple[list[RunData], list[str]]:
    """Every run folder directly under ``results_dir`` (those with a run.json), and one
    message per folder that could not be read (skipped, not fatal).

    Raises:
        UserError: ``results_dir`` is not a folder, or holds no readable run.
    """
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder of runs")
    runs, skipped = [], []
    for path in sorted(results_dir.iterdir()):
        if not (path / "run.json").is_file():
            continue
        try:
            runs.append(load_run(path))
        except (UserError, ValueError, KeyError, OSError) as exc:
            skipped.append(f"{path.name}: {exc}")
    if not runs:
        raise UserError(f"{results_dir}: no readable run here"
                        + (f" ({'; '.join(skipped)})" if skipped else ""))
    return runs, skipped


def check_options(metrics: Sequence[str], alpha: float,
                  min_effects: Mapping[str, float] | None) -> dict[str, float]:
    """The minimum effect of every metric (fractions; defaults
    :data:`harness.gates.DEFAULT_MIN_EFFECT`), after checking the options.

    Raises:
        UserError: an unknown metric, alpha outside (0, 1), a negative effect, an effect
            for a metric not charted.
    """
    for name in metrics:
        if name not in METRICS:
            raise UserError(f"--metrics: unknown metric {name!r}; known: {', '.join(METRICS)}")
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha:g}: must be between 0 and 1")
    effects = {m: float((min_effects or {}).get(m, DEFAULT_MIN_EFFECT.get(m, FALLBACK_MIN_EFFECT)))
               for m in metrics}
    if any(e < 0 for e in effects.values()):
        raise UserError("--min-effect: must be >= 0")
    unknown = set(min_effects or {}) - set(metrics)
    if unknown:
        raise UserError(f"--min-effect {', '.join(sorted(unknown))}: not a charted metric")
    return effects


def collect(results_dir: Path, metrics: Sequence[str] = DEFAULT_METRICS, *,
            alpha: float = DEFAULT_ALPHA, min_effects: Mapping[str, float] | None = None,
            ) -> History:
    """Read the runs under ``results_dir`` and build every series with its change points.

    ``metrics`` are trials.csv columns of :data:`harness.gates.METRICS`; ``min_effects``
    (fractions) default to :data:`harness.gates.DEFAULT_MIN_EFFECT`.

    Raises:
        UserError: no runs, or bad options (:func:`check_options`).
    """
    effects = check_options(metrics, alpha, min_effects)
    runs, skipped = load_runs(results_dir)
    return from_runs(runs, skipped, metrics, alpha=alpha, min_effects=effects)


def from_runs(runs: Sequence[RunData], skipped: Sequence[str],
              metrics: Sequence[str] = DEFAULT_METRICS, *, alpha: float = DEFAULT_ALPHA,
              min_effects: Mapping[str, float] | None = None) -> History:
    """The history of runs already read (:func:`load_runs`); ``skipped`` are the messages
    of the folders that could not be read.

    Raises:
        UserError: bad options (:func:`check_options`).
    """
    effects = check_options(metrics, alpha, min_effects)
    order = sorted(runs, key=start_key)
    infos: list[RunInfo] = []
    frames = []
    for pos, r in enumerate(order):
        run_id = r.meta.run_id or r.path.name
        t = r.trials
        ok = t[t["status"] == "ok"].copy() if len(t) else t.copy()
        infos.append(RunInfo(pos, run_id, r.meta.started_at or "", r.meta.git.commit or "",
                             r.meta.status or "unknown", _label(r.meta, run_id),
                             r.meta.machine.label(), len(ok), len(t)))
        if len(ok):
            for col in _CONFIG:
                if col not in ok:
                    ok[col] = math.nan
            ok["position"] = pos
            ok["scenario_id"] = [r.meta.scenario.label(str(s)) for s in ok["scenario"]]
            ok["machine"] = r.meta.machine.label()
            frames.append(ok)
    machines = {i.machine for i in infos}
    series: list[Series] = []
    if frames:
        trials = pd.concat(frames, ignore_index=True)
        if len(machines) == 1:
            trials["machine"] = ""
        by = ["scenario_id", *_CONFIG, "machine"]
        for key, group in trials.groupby(by, sort=True, dropna=False):
            key_map = dict(zip(by, key, strict=True))
            config = {k: plain_value(v) for k, v in key_map.items() if k in _CONFIG}
            for metric in metrics:
                series.append(_series(key_map, config, METRICS[metric], group, infos,
                                      alpha, effects[metric]))
    return History(infos, series, list(skipped), alpha, effects)


def _series(key: Mapping[str, Any], config: dict[str, Any], metric: MetricSpec,
            group: pd.DataFrame, infos: Sequence[RunInfo], alpha: float,
            min_effect: float) -> Series:
    rows, groups = [], []
    for pos, g in group.groupby("position", sort=True):
        values = pd.to_numeric(g[metric.column], errors="coerce").dropna().to_numpy(dtype=float)
        if not len(values):
            continue
        info = infos[int(pos)]
        rows.append({"position": int(pos), "run_id": info.run_id, "label": info.label,
                     "median": float(np.median(values)), "min": float(values.min()),
                     "max": float(values.max()), "n": len(values),
                     "complete": info.status == "complete"})
        groups.append(values)
    points = pd.DataFrame(rows, columns=["position", "run_id", "label", "median", "min",
                                         "max", "n", "complete"])
    found = detect_change_points(groups, alpha=alpha, min_effect=min_effect)
    cps = []
    for index, before, after, change, p in found:
        row = points.iloc[index]
        cps.append(ChangePoint(int(row["position"]), str(row["run_id"]), str(row["label"]),
                               before, after, change, p))
    return Series(str(key["scenario_id"]), config, str(key["machine"]), metric, points, cps)


# --- the overview ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latest:
    """One series summed up for the overview: its latest point (``position``, ``label``,
    ``median``, ``n`` of the last run that measured it), the relative change of that
    median against the previous point (NaN with one point), the last change point (None
    without one) and the latest median against the level before that step (NaN without
    one). ``verdict`` is ``"regression"`` / ``"improvement"`` when the last change point
    moved the metric the worse / better way, else ``""``; ``stale`` when the latest run
    did not measure the series."""

    series: Series
    position: int
    label: str
    median: float
    n: int
    vs_previous: float
    change_point: ChangePoint | None
    vs_change_point: float
    verdict: str
    stale: bool


def _relative(new: float, old: float) -> float:
    return (new - old) / abs(old) if old else math.nan


def overview(history: History) -> list[Latest]:
    """:class:`Latest` of every series with at least one point, in series order. A series
    is ``stale`` when a later run of its scenario (same parameters and machine) measured
    other configurations but not it."""
    last_of: dict[tuple[str, str], int] = {}
    for s in history.series:
        if len(s.points):
            key = (s.scenario, s.machine)
            last_of[key] = max(last_of.get(key, -1), int(s.points["position"].max()))
    out = []
    for s in history.series:
        p = s.points
        if not len(p):
            continue
        last = p.iloc[-1]
        previous = float(p.iloc[-2]["median"]) if len(p) > 1 else math.nan
        cp = s.change_points[-1] if s.change_points else None
        verdict = ""
        if cp is not None and cp.change:
            worse = cp.change < 0 if s.metric.higher_is_better else cp.change > 0
            verdict = "regression" if worse else "improvement"
        median = float(last["median"])
        out.append(Latest(s, int(last["position"]), str(last["label"]), median,
                          int(last["n"]), _relative(median, previous), cp,
                          _relative(median, cp.before) if cp else math.nan, verdict,
                          int(last["position"]) < last_of[(s.scenario, s.machine)]))
    return out
