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

import html
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from scipy import stats

from harness.compare import (
    DEFAULT_ALPHA,
    DEFAULT_METRICS,
    DEFAULT_MIN_EFFECT,
    FALLBACK_MIN_EFFECT,
    METRICS,
    MetricSpec,
    config_label,
    plain_value,
)
from harness.errors import UserError
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

    ``metrics`` are trials.csv columns of :data:`harness.compare.METRICS`; ``min_effects``
    (fractions) default to :data:`harness.compare.DEFAULT_MIN_EFFECT`.

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

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#222}
h2{border-bottom:2px solid #444;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .5em}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.incomplete{background:#fff1cc}.note{color:#555}.change{color:#a50f15;font-weight:600}
"""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


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


def _e(value: Any) -> str:
    return html.escape(str(value))


def render(history: History, out: Path) -> Path:
    """Write the dashboard for ``history`` to ``out`` (atomically); return ``out``.
    plotly.js is inlined with the first chart only; the page needs no network."""
    charts: list[str] = []
    for number, s in enumerate(history.series):
        charts.append(f"<h3>{_e(s.title)}</h3>" + pio.to_html(
            figure(s, history.runs), include_plotlyjs=number == 0, full_html=False,
            config=_PLOT_CONFIG, div_id=f"series{number}", default_height="380px"))
    run_rows = "".join(
        f'<tr class="{"" if r.status == "complete" else "incomplete"}"><td class="num">'
        f"{r.position}</td><td>{_e(r.label)}</td><td>{_e(r.run_id)}</td>"
        f"<td>{_e(r.started_at)}</td><td>{_e(r.status)}</td>"
        f'<td class="num">{r.ok_trials} / {r.trials}</td><td>{_e(r.machine)}</td></tr>'
        for r in history.runs)
    cps = [(s, cp) for s in history.series for cp in s.change_points]
    cp_rows = "".join(
        f'<tr><td>{_e(s.title)}</td><td>{_e(cp.label)} ({_e(cp.run_id)})</td>'
        f'<td class="num">{cp.before:.4g} → {cp.after:.4g} {_e(s.metric.unit)}</td>'
        f'<td class="num change">{cp.change:+.1%}</td><td class="num">{cp.p_value:.2g}</td></tr>'
        for s, cp in cps)
    cp_table = (f"<table><tr><th>series</th><th>at run</th><th>median before → after</th>"
                f"<th>change</th><th>p (Bonferroni)</th></tr>{cp_rows}</table>" if cps
                else '<p class="note">No change point detected.</p>')
    skipped = ("<p class=\"note\">Skipped (unreadable): "
               + "; ".join(_e(s) for s in history.skipped) + "</p>") if history.skipped else ""
    effects = ", ".join(f"{METRICS[m].label} {e:.0%}" for m, e in history.min_effects.items())
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>bench history: {len(history.runs)} runs</title><style>{_CSS}</style></head>"
        f"<body><h1>bench history</h1><p class=\"note\">{len(history.runs)} runs, "
        f"{len(history.series)} series, {len(cps)} change points.</p>{skipped}"
        f"<h2>Change points</h2>{cp_table}"
        f"<h2>Trends</h2>{''.join(charts) or '<p class=note>No ok trial to plot.</p>'}"
        "<h2>Runs</h2><table><tr><th>#</th><th>commit</th><th>run</th><th>started</th>"
        f"<th>status</th><th>ok / trials</th><th>machine</th></tr>{run_rows}</table>"
        "<h2>Method</h2><p>Each point is the median of a run's <code>ok</code> repeats; the "
        "band spans their min and max. Runs that are not complete contribute their ok "
        "trials and are marked. Change points: binary segmentation (Scott &amp; Knott 1974; "
        "Vostrikova 1981) with Welch's t-test between the repeats before and after each "
        "candidate split, Bonferroni over the splits tried, alpha "
        f"{history.alpha:g}, and a minimum relative change of the medians ({_e(effects)}).</p>"
        "</body></html>\n")
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
