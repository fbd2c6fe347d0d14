"""The history dashboard: how each metric of each configuration moved over many runs.

:func:`collect` reads every run folder under a results folder, orders the runs by start
time, and builds one :class:`Series` per (scenario with its parameters, configuration,
metric): for each run the median, min and max of its ok repeats. :func:`render` writes
one self-contained HTML page (plotly.js inline once) with a trend chart per series, the
min-max band of the repeats, and the detected change points marked and labelled with
the run (commit) where they happened.

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
import plotly.graph_objects as go
from scipy import stats

from harness.compare import config_label, plain_value
from harness.compare_defaults import DEFAULT_ALPHA, DEFAULT_METRICS
from harness.errors import UserError
from harness.gates import DEFAULT_MIN_EFFECT, FALLBACK_MIN_EFFECT, METRICS, MetricSpec
from harness.results import RunData, atomic_write_bytes, load_run

_CONFIG = ("server", "workers", "users", "offered_rps", "backend")


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


def _machine(meta: Mapping[str, Any]) -> str:
    m = meta.get("machine") or {}
    return f"{m.get('cpu_model', 'unknown CPU')} ×{m.get('logical_cpus', '?')}"


def _label(meta: Mapping[str, Any], run_id: str) -> str:
    git = meta.get("git") or {}
    commit = str(git.get("commit") or "")
    return (commit[:7] + ("*" if git.get("dirty") else "")) if commit else run_id


def _scenario(meta: Mapping[str, Any], name: str) -> str:
    params = (meta.get("scenario") or {}).get("params") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    return f"{name} {text}" if text else name


def _start_key(run: RunData) -> tuple[bool, int, str]:
    """Start time first (runs without a readable one last), then run id."""
    ts = pd.to_datetime(run.meta.get("started_at"), utc=True, errors="coerce")
    missing = ts is None or pd.isna(ts)
    return missing, 0 if missing else int(ts.value), str(run.meta.get("run_id") or run.path.name)


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


def collect(results_dir: Path, metrics: Sequence[str] = DEFAULT_METRICS, *,
            alpha: float = DEFAULT_ALPHA, min_effects: Mapping[str, float] | None = None,
            ) -> History:
    """Read the runs under ``results_dir`` and build every series with its change points.

    ``metrics`` are trials.csv columns of :data:`harness.gates.METRICS`; ``min_effects``
    (fractions) default to :data:`harness.gates.DEFAULT_MIN_EFFECT`.

    Raises:
        UserError: no runs, an unknown metric, alpha outside (0, 1), a negative effect.
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

    runs, skipped = load_runs(results_dir)
    order = sorted(runs, key=_start_key)
    infos: list[RunInfo] = []
    frames = []
    for pos, r in enumerate(order):
        run_id = str(r.meta.get("run_id") or r.path.name)
        t = r.trials
        ok = t[t["status"] == "ok"].copy() if len(t) else t.copy()
        infos.append(RunInfo(pos, run_id, str(r.meta.get("started_at") or ""),
                             str((r.meta.get("git") or {}).get("commit") or ""),
                             str(r.meta.get("status") or "unknown"), _label(r.meta, run_id),
                             _machine(r.meta), len(ok), len(t)))
        if len(ok):
            for col in _CONFIG:
                if col not in ok:
                    ok[col] = math.nan
            ok["position"] = pos
            ok["scenario_id"] = [_scenario(r.meta, s) for s in ok["scenario"]]
            ok["machine"] = _machine(r.meta)
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
    return History(infos, series, skipped, alpha, effects)


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


# --- rendering ----------------------------------------------------------------------------

def figure(series: Series, runs: Sequence[RunInfo]) -> go.Figure:
    """The trend chart of one series: min-max band of the repeats, median per run
    (runs not complete marked with an open ``x``), a dashed line and label per change point;
    x is the run in start-time order, labelled by short commit (or run id)."""
    p = series.points
    unit = series.metric.unit
    fig = go.Figure()
    hover = [f"{r.run_id}<br>{r.label}<br>median {r.median:.4g} {unit} (n={r.n}), "
             f"min {r.min:.4g}, max {r.max:.4g}"
             + ("" if r.complete else f"<br>run {runs[r.position].status}")
             for r in p.itertuples()]
    fig.add_trace(go.Scatter(x=p["position"], y=p["max"], mode="lines", line={"width": 0},
                             hoverinfo="skip", showlegend=False))
    fig.add_trace(go.Scatter(x=p["position"], y=p["min"], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(31,119,180,0.2)",
                             name="min–max of repeats", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=p["position"], y=p["median"], mode="lines+markers",
                             line={"color": "#1f77b4"}, name="median of ok repeats",
                             hovertext=hover, hoverinfo="text"))
    partial = p[~p["complete"].astype(bool)]
    if len(partial):
        fig.add_trace(go.Scatter(
            x=partial["position"], y=partial["median"], mode="markers",
            marker={"symbol": "x-open", "size": 12, "color": "#e6a700"},
            name="run not complete", hoverinfo="skip"))
    for cp in series.change_points:
        fig.add_vline(x=cp.position, line={"dash": "dash", "color": "#a50f15"},
                      annotation_text=f"{cp.change:+.0%} at {cp.label}",
                      annotation_position="top left")
    fig.update_layout(
        title=series.title, height=380, margin={"t": 60, "b": 80},
        yaxis_title=f"{series.metric.label} ({unit})",
        xaxis={"title": "run (commit), in start-time order", "tickmode": "array",
               "tickvals": [r.position for r in runs], "ticktext": [r.label for r in runs],
               "tickangle": -45, "range": [-0.5, len(runs) - 0.5]},
        legend={"orientation": "h", "y": -0.35})
    return fig


def render(history: History, out: Path) -> Path:
    """Write the dashboard for ``history`` to ``out`` (atomically); return ``out``.
    plotly.js is inlined with the first chart only; the page needs no network. Rendered
    from ``history.html.j2`` on the report's base template (:mod:`harness.report.templating`)."""
    from harness.report.tables import make_table
    from harness.report.templating import plot_div, render_template

    charts = [(s.title, plot_div(figure(s, history.runs), div_id=f"series{number}",
                                 include_js=number == 0, height="380px"))
              for number, s in enumerate(history.series)]
    runs = make_table(
        [("#", True), ("commit", False), ("run", False), ("started", False),
         ("status", False), ("ok / trials", True), ("machine", False)],
        [("" if r.status == "complete" else "incomplete",
          [str(r.position), r.label, r.run_id, r.started_at, r.status,
           f"{r.ok_trials} / {r.trials}", r.machine]) for r in history.runs])
    cps = [(s, cp) for s in history.series for cp in s.change_points]
    changes = make_table(
        [("series", False), ("at run", False), ("median before → after", True),
         ("change", True), ("p (Bonferroni)", True)],
        [("", [s.title, f"{cp.label} ({cp.run_id})",
               f"{cp.before:.4g} → {cp.after:.4g} {s.metric.unit}",
               (f"{cp.change:+.1%}", None, "change"), f"{cp.p_value:.2g}"])
         for s, cp in cps]) if cps else None
    effects = ", ".join(f"{METRICS[m].label} {e:.0%}" for m, e in history.min_effects.items())
    page = render_template("history.html.j2", history=history, charts=charts,
                           changes=changes, change_count=len(cps), runs=runs,
                           effects=effects)
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
